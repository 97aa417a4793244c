/* Page-touch micro-benchmark (round 8): CPU time to fill 256 MiB of fresh
 * anonymous memory 5,000 bytes at a time, as the log grows.
 * mode 0: 4 KiB faults (MADV_NOHUGEPAGE); 1: huge pages (MADV_HUGEPAGE);
 * 2: MADV_POPULATE_WRITE of WIN bytes ahead of the writes.
 * gcc -O2 -o pagetouch pagetouch.c; for r in 1 2 3 4; do ./pagetouch 0; ./pagetouch 1; ./pagetouch 2 65536; done */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <stdint.h>
#include <sys/resource.h>
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23
#endif
static double now(void){struct rusage u;getrusage(RUSAGE_SELF,&u);return u.ru_utime.tv_sec+u.ru_stime.tv_sec+(u.ru_utime.tv_usec+u.ru_stime.tv_usec)*1e-6;}
static char src[6000];
int main(int argc,char**argv){
  size_t total=(size_t)256<<20; int mode=atoi(argv[1]); size_t win=argc>2?strtoul(argv[2],0,0):65536;
  uint8_t *m=mmap(NULL,total+(2<<20),PROT_READ|PROT_WRITE,MAP_PRIVATE|MAP_ANONYMOUS,-1,0);
  uint8_t *p=(uint8_t*)(((uintptr_t)m+(2<<20)-1)&~(uintptr_t)((2<<20)-1));
  if(mode==1) madvise(p,total,MADV_HUGEPAGE); else madvise(p,total,MADV_NOHUGEPAGE);
  memset(src,7,sizeof src);
  double t0=now(); size_t pop=0;
  for(size_t off=0; off+5000<=total; off+=5000){
    if(mode==2 && off+5000>pop){ size_t e=pop+win; if(e>total)e=total; madvise(p+pop,e-pop,MADV_POPULATE_WRITE); pop=e; }
    memcpy(p+off,src,5000);
  }
  double t1=now();
  printf("mode %d win %zu: %.3f us per 5000-byte copy, %.2f ns/byte\n",mode,win,(t1-t0)*1e6/(total/5000),(t1-t0)*1e9/total);
  return 0;
}
