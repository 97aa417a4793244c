# Sourced by cluster_dp.sh and bench/dataplane/bench_dp.sh: config files and
# start order for N dp_peer nodes (2 or 3) over kernel UDP, memif or
# vhost/virtio-user (one link per pair, --no-huge, own --file-prefix; mode
# vhost-client pairs them as keeld does: virtio-user server, vhost client), and a
# cleanup that kills only the processes started here.
#   dp_net_init MODE N         makes DP_DIR, writes $DP_DIR/nodeI.conf
#   dp_net_conf I LINE         appends a dp.* line to node I's config
#   dp_net_start PEER ARGS..   starts node 1..N (node 1 gets ARGS, others
#                              DP_NET_OTHERS, default: the same ARGS)
#   dp_net_wait                waits for all; prints outputs; returns 1 if any failed
DP_PIDS=()
dp_net_cleanup() {
	local p
	for p in "${DP_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	sleep 0.2
	for p in "${DP_PIDS[@]}"; do
		kill -9 "$p" 2>/dev/null
		wait "$p" 2>/dev/null
	done
	DP_PIDS=()
	if [ -n "${DP_DIR:-}" ]; then
		rm -rf "$DP_DIR"
		# EAL's runtime directories of our nodes (--file-prefix below).
		rm -rf /var/run/dpdk/keeldp$$-* 2>/dev/null
	fi
	DP_DIR=
}

dp_net_conf() { echo "$2" >>"$DP_DIR/node$1.conf"; }

dp_wait_file() {
	for _ in $(seq 100); do
		[ -e "$1" ] && return 0
		sleep 0.1
	done
	echo "dp_net: $1 did not appear" >&2
	return 1
}

dp_net_init() { # MODE N
	DP_MODE=$1
	DP_N=$2
	DP_DIR=$(mktemp -d /tmp/keel-dp.XXXXXX)
	local base=$((20000 + ($$ % 1200) * 10)) i j tries
	if [ "$DP_MODE" = udp ]; then
		# The machine is shared: take a base whose ports nobody has bound
		# (below the kernel's ephemeral range, 32768-60999).
		for tries in $(seq 20); do
			local busy=0
			for i in $(seq "$DP_N"); do
				[ -n "$(ss -Hunl "sport = :$((base + i))" 2>/dev/null)" ] && busy=1
			done
			[ $busy = 0 ] && break
			base=$((20000 + (RANDOM % 1200) * 10))
		done
	fi
	for i in $(seq "$DP_N"); do
		: >"$DP_DIR/node$i.conf"
		dp_net_conf "$i" "dp.node_id=$i"
		dp_net_conf "$i" "dp.cluster_id=77"
		for j in $(seq "$DP_N"); do
			[ "$i" = "$j" ] && continue
			if [ "$DP_MODE" = udp ]; then
				dp_net_conf "$i" "dp.peer.$j=127.0.0.1:$((base + j))"
			else
				dp_net_conf "$i" "dp.peer.$j=10.99.0.$j:7400"
			fi
		done
		if [ "$DP_MODE" = udp ]; then
			dp_net_conf "$i" "dp.ip=127.0.0.1"
			dp_net_conf "$i" "dp.udp_port=$((base + i))"
		else
			dp_net_conf "$i" "dp.ip=10.99.0.$i"
			dp_net_conf "$i" "dp.no_huge=1"
			dp_net_conf "$i" "dp.memory_mb=192"
			dp_net_conf "$i" "dp.file_prefix=keeldp$$-$i"
		fi
	done
	[ "$DP_MODE" = udp ] && return 0
	# Node 1 serves its links, node 2 serves 2-3: servers start first.
	local k=()
	for i in $(seq "$DP_N"); do k[$i]=0; done
	for i in $(seq "$DP_N"); do
		for j in $(seq $((i + 1)) "$DP_N"); do
			dp_link "$i" "${k[$i]}" "$i$j" server
			k[$i]=$((k[$i] + 1))
			dp_link "$j" "${k[$j]}" "$i$j" client
			k[$j]=$((k[$j] + 1))
		done
	done
}

dp_link() { # node port_index pair role
	local s=$DP_DIR/l$3.sock
	if [ "$DP_MODE" = memif ]; then
		# Fixed MACs 02:00:00:00:NODE:PORT, so a test can configure them statically.
		dp_net_conf "$1" "dp.device.$2=net_memif$2,role=$4,socket=$s,socket-abstract=no,mac=02:00:00:00:0$1:0$2"
	elif [ "$DP_MODE" = vhost-client ]; then
		# keeld's pairing (scripts/cluster, zkcluster.py): the serving node
		# runs virtio-user in server mode, its peer vhost in client mode.
		if [ "$4" = server ]; then
			dp_net_conf "$1" "dp.device.$2=net_virtio_user$2,path=$s,server=1,queues=1,queue_size=1024"
		else
			dp_net_conf "$1" "dp.device.$2=net_vhost$2,iface=$s,client=1,queues=1"
		fi
	elif [ "$4" = server ]; then
		dp_net_conf "$1" "dp.device.$2=net_vhost$2,iface=$s,queues=1"
	else
		dp_net_conf "$1" "dp.device.$2=net_virtio_user$2,path=$s,queues=1,queue_size=1024"
	fi
}

dp_net_start() { # PEER ARGS...
	local peer=$1 i j
	shift
	export DP_PEER_CLOSE_FILE=$DP_DIR/close
	local others=("$@")
	[ -n "${DP_NET_OTHERS:-}" ] && read -r -a others <<<"$DP_NET_OTHERS"
	for i in $(seq "$DP_N"); do
		if [ "$DP_MODE" != udp ] && [ "$DP_MODE" != vhost-client ]; then
			# Wait for the sockets of the links node i is a client on
			# (a vhost client retries by itself).
			for j in $(seq $((i - 1))); do
				dp_wait_file "$DP_DIR/l$j$i.sock" || return 1
			done
		fi
		if [ "$i" = 1 ]; then
			timeout -s TERM "${DP_TIMEOUT:-50}" "$peer" "$DP_DIR/node$i.conf" "$@" \
				>"$DP_DIR/out$i" 2>&1 &
		else
			timeout -s TERM "${DP_TIMEOUT:-50}" "$peer" "$DP_DIR/node$i.conf" "${others[@]}" \
				>"$DP_DIR/out$i" 2>&1 &
		fi
		DP_PIDS+=($!)
	done
}

dp_net_wait() {
	local k rc status=0 ready
	# Close barrier (see dp_peer.c): release the nodes once each has
	# stopped polling (or exited).
	while :; do
		ready=0
		for k in $(seq "$DP_N"); do
			if grep -q "ready to close" "$DP_DIR/out$k" 2>/dev/null ||
				! kill -0 "${DP_PIDS[$((k - 1))]}" 2>/dev/null; then
				ready=$((ready + 1))
			fi
		done
		[ "$ready" = "$DP_N" ] && break
		sleep 0.05
	done
	touch "$DP_DIR/close"
	for k in $(seq 0 $((DP_N - 1))); do
		wait "${DP_PIDS[$k]}"
		rc=$?
		echo "--- node $((k + 1)) exit $rc"
		# DPDK drivers log link flaps at error level; keep the output readable.
		grep -v -E "link_state|disconnect_handler|init_mac|Intr handle unset|vhost_user_write|set_vring|stop_device" \
			"$DP_DIR/out$((k + 1))"
		[ $rc -ne 0 ] && status=1
	done
	DP_PIDS=()
	return $status
}
