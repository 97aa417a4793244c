# Reads the traces written with stall-trace-20261122.diff (/tmp/kd/tr.1..3).
# For every AppendResp a follower sent: the Append carrying that index (first arrival),
# when it arrived (RM), when the follower's log made it durable (PE), when the response left (SM).
import collections,bisect
res=collections.Counter(); worst=[]
for f in (1,2,3):
    arr={}; pe=[]; resp=[]
    for l in open(f'/tmp/kd/tr.{f}'):
        x=l.split()
        if x[0]=='RM' and x[3]=='Append':
            i=int(x[5][1:]); n=int(x[8][1:])
            for k in range(i+1,i+n+1): arr.setdefault(k,int(x[1]))
        elif x[0]=='PE': pe.append((int(x[1]),int(x[3])))
        elif x[0]=='SM' and x[3]=='AppendResp' and x[9]=='f0':
            resp.append((int(x[1]),int(x[5][1:])))
    for t,i in resp:
        if i not in arr: continue
        tot=(t-arr[i])/1e6
        # durable time: first PE with last_index>=i after arrival
        d=next((pt for pt,pl in pe if pl>=i and pt>=arr[i]),None)
        if d is None: continue
        disk=(d-arr[i])/1e6
        if tot>40:
            res['>40ms total']+=1
            if disk>0.8*tot: res['  of which >80% waiting for its own fsync']+=1
            else: worst.append((f,i,tot,disk))
        res['all']+=1
print(res); print(worst[:10])
