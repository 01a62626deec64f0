#!/bin/sh
# /init of the PVH Linux guest's initramfs (xtask/src/linux_guest/init.sh): busybox only.
# Reports what the kernel found of Xen, then acts on `guest.mode=` of the kernel command line:
#   poweroff (default): print "linux-guest: powering off" and power off (SCHEDOP_shutdown poweroff)
#   panic:              crash the kernel through sysrq (the domain ends as crashed)
#   shell:              a shell on the console, then power off
#   stay:               sleep forever
#   net:                eth0 up (guest.ip, guest.gw), ping (guest.ping), httpd on port 80, stay up
#   demo:               mount (or make) ext4 on the disk, log the boot there, net as `net`, stay up
#   blk-loop:           write and read back xvda's first MiB (O_DIRECT) once a second, forever
#   disk-write:         mke2fs -t ext4 on /dev/$disk, write files of known content, print
#                       "linux-guest: wrote <name> <md5>" each (kept in /MD5SUMS), sync, umount
#   disk-verify:        mount /dev/$disk, check every file of /MD5SUMS: "linux-guest: verified
#                       <name> <md5>" or "linux-guest: MISMATCH <name> <md5> (wrote <md5>)"
#   stream:             eth0 up and ping as net, then receive one TCP stream on port guest.port,
#                       forwarding it as it arrives to guest.peer=IP:PORT (if given); print its
#                       length and md5, then power off
#   idle:               print "linux-guest: idling <n> s", sleep `guest.idle_secs=` (default 5),
#                       print "linux-guest: idle done" and power off (`cargo xtask bench pvh`)
#   fio:                /usr/bin/fio (the bench linux-io initramfs) on the disk, O_DIRECT, libaio,
#                       `guest.fio_secs=` (default 3) each: 1 MiB sequential writes and reads, 4 KiB
#                       random reads at QD1 and QD16: "linux-guest: fio <job> <IOPS> <KiB/s>"
# `guest.disk=` names the disk (default xvda; vda on virtio-blk). In net and blk-loop, an
# initramfs with /usr/bin/iperf3 also runs an iperf3 server on port 5201.
# `guest.modules=1` loads the modules of /lib/modules first, in modules.order (dependencies first):
# the Xen block and network frontends, ext4.
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "linux-guest: init started"
echo "linux-guest: kernel $(uname -r)"
dmesg | grep -i -E 'xen|hvc' | head -20
grep -i xen /proc/interrupts
mode=poweroff
modules=0
idle_secs=5
disk=xvda
fio_secs=3
for word in $(cat /proc/cmdline); do
	case "$word" in
	guest.mode=*) mode="${word#guest.mode=}" ;;
	guest.modules=*) modules="${word#guest.modules=}" ;;
	guest.ip=*) ip="${word#guest.ip=}" ;;
	guest.gw=*) gw="${word#guest.gw=}" ;;
	guest.ping=*) ping="${word#guest.ping=}" ;;
	guest.idle_secs=*) idle_secs="${word#guest.idle_secs=}" ;;
	guest.port=*) port="${word#guest.port=}" ;;
	guest.peer=*) peer="${word#guest.peer=}" ;;
	guest.disk=*) disk="${word#guest.disk=}" ;;
	guest.fio_secs=*) fio_secs="${word#guest.fio_secs=}" ;;
	esac
done
if [ "$modules" = 1 ]; then
	for m in $(cat /lib/modules/modules.order); do
		# As modprobe does: `<module>.<param>=<value>` words of the command line are the
		# module's parameters (xen_blkfront.max_indirect_segments=128).
		name=$(basename "$m" .ko | tr - _)
		params=""
		for word in $(cat /proc/cmdline); do
			case "$word" in "$name".*) params="$params ${word#"$name".}" ;; esac
		done
		# shellcheck disable=SC2086 # one word per parameter
		if insmod "/lib/modules/$m" $params; then echo "linux-guest: loaded $m$params"; else echo "linux-guest: insmod $m failed"; fi
	done
fi
# eth0 up (guest.ip, guest.gw), one ping (guest.ping, default the gateway), httpd on port 80.
net_up() {
	ip link set lo up
	ip link set eth0 up
	ip addr add "${ip:-10.0.2.15/24}" dev eth0
	ip route add default via "${gw:-10.0.2.2}"
	echo "linux-guest: eth0 $(cat /sys/class/net/eth0/address) ${ip:-10.0.2.15/24}"
	if ping -c 3 -W 5 "${ping:-${gw:-10.0.2.2}}" > /tmp/ping; then
		echo "linux-guest: ping ${ping:-${gw:-10.0.2.2}} ok: $(tail -1 /tmp/ping)"
	else
		echo "linux-guest: ping ${ping:-${gw:-10.0.2.2}} failed"
	fi
	mkdir -p /www
	echo "hello from Linux on xen-netfront and the Rust netback" > /www/index.html
	httpd -p 80 -h /www
	echo "linux-guest: httpd serving on port 80"
	[ -x /usr/bin/iperf3 ] && /usr/bin/iperf3 -s -p 5201 > /dev/null 2>&1 &
}
echo "linux-guest: mode $mode"
disk_wait() { # xen-blkfront connects after insmod returns: wait for the disk (up to 10 s)
	i=0
	while [ ! -b /dev/$disk ] && [ $i -lt 100 ]; do usleep 100000; i=$((i + 1)); done
	[ -b /dev/$disk ] || { echo "linux-guest: no /dev/$disk"; return 1; }
}
disk_mount() { disk_wait && mount -t ext4 /dev/$disk /mnt && cd /mnt; }
disk_files() { # deterministic content; in seq.txt and lcg.txt every 4 KiB block differs
	mkdir -p dir && seq 1 200000 > seq.txt && echo "ext4 on xvda, Rust blkback underneath" > dir/note.txt &&
		awk 'BEGIN { x = 42; for (i = 0; i < 50000; i++) { x = (x * 69069 + 1) % 4294967296; print i, x } }' > lcg.txt &&
		find . -type f | sed 's|^\./||' | sort | xargs md5sum > /tmp/sums && cp /tmp/sums MD5SUMS
}
disk_check() {
	while read -r sum name; do
		now=$(md5sum "$name") && now=${now%% *}
		if [ "$now" = "$sum" ]; then echo "linux-guest: verified $name $now"; else echo "linux-guest: MISMATCH $name $now (wrote $sum)"; fi
	done < MD5SUMS
}
disk_done() { cd / && sync && umount /mnt && echo "linux-guest: disk $mode done"; }
case "$mode" in
disk-write)
	if disk_wait && /sbin/mke2fs -t ext4 -F /dev/$disk && disk_mount && disk_files; then
		while read -r sum name; do echo "linux-guest: wrote $name $sum"; done < /tmp/sums
		disk_done
	else echo "linux-guest: disk-write FAILED"; fi
	;;
disk-verify)
	if disk_mount; then disk_check && disk_done; else echo "linux-guest: disk-verify FAILED (mount)"; fi
	;;
panic)
	echo "linux-guest: panicking through sysrq"
	echo 1 > /proc/sys/kernel/sysrq
	echo c > /proc/sysrq-trigger
	;;
shell)
	busybox --install -s /bin
	setsid cttyhack sh
	;;
net)
	# eth0 (xen-netfront) up with guest.ip/guest.gw, ping guest.ping (default: the gateway),
	# then serve /www over HTTP on port 80 and stay up.
	net_up
	while :; do sleep 3600; done
	;;
stream)
	net_up
	# One connection on guest.port (nc's stdin is empty: it half-closes at once); tee feeds
	# wc and md5sum through fifos and the rest to guest.peer (or nowhere).
	mkfifo /tmp/len /tmp/sum
	wc -c < /tmp/len > /tmp/n &
	md5sum < /tmp/sum > /tmp/md5 &
	echo "linux-guest: listening on port ${port:-5001}"
	if [ -n "$peer" ]; then
		nc -l -p "${port:-5001}" < /dev/null | tee /tmp/len /tmp/sum | nc "${peer%:*}" "${peer#*:}"
		echo "linux-guest: forwarded to $peer, nc exit $?"
	else
		nc -l -p "${port:-5001}" < /dev/null | tee /tmp/len /tmp/sum > /dev/null
	fi
	wait
	echo "linux-guest: received $(cat /tmp/n) bytes, md5 $(cut -d ' ' -f 1 /tmp/md5)"
	;;
demo)
	# `cargo xtask run linux`: ext4 on the disk (made on the first boot), the boot logged there;
	# the network up and httpd serving; stays up.
	if disk_wait; then
		mount -t ext4 "/dev/$disk" /mnt 2> /dev/null ||
			{ /sbin/mke2fs -q -t ext4 -F "/dev/$disk" && mount -t ext4 "/dev/$disk" /mnt && echo "linux-guest: made ext4 on /dev/$disk"; }
		echo "boot $(uname -r) $(date)" >> /mnt/boots.log && sync
		echo "linux-guest: /dev/$disk mounted on /mnt, $(wc -l < /mnt/boots.log) boots logged in /mnt/boots.log"
		df -h /mnt | tail -1
	fi
	net_up
	echo "linux-guest: staying up"
	while :; do sleep 3600; done
	;;
blk-loop)
	# Writes and reads back xvda's first MiB in a loop (O_DIRECT), one line per round; with
	# guest.ip also the network of `net` (httpd) beside it.
	[ -n "$ip" ] && net_up
	n=0
	while :; do
		n=$((n + 1))
		dd if=/dev/urandom of=/tmp/blk bs=4k count=256 2>/dev/null
		if dd if=/tmp/blk of=/dev/$disk bs=4k count=256 oflag=direct 2>/dev/null &&
			dd if=/dev/$disk of=/tmp/back bs=4k count=256 iflag=direct 2>/dev/null &&
			[ "$(md5sum < /tmp/blk)" = "$(md5sum < /tmp/back)" ]; then
			echo "linux-guest: blk round $n ok"
		else
			echo "linux-guest: blk round $n FAILED"
		fi
		sleep 1
	done
	;;
stay)
	echo "linux-guest: staying up"
	while :; do sleep 3600; done
	;;
idle)
	echo "linux-guest: idling $idle_secs s"
	if sleep "$idle_secs"; then
		echo "linux-guest: idle done"
	else
		echo "linux-guest: bad guest.idle_secs=$idle_secs (give whole seconds, e.g. guest.idle_secs=5)"
	fi
	;;
fio)
	disk_wait && for job in seqwrite_1m:write:1M:1 seqread_1m:read:1M:1 randread_4k_qd1:randread:4k:1 randread_4k_qd16:randread:4k:16; do
		IFS=: && set -- $job && unset IFS
		if /usr/bin/fio --name="$1" --filename="/dev/$disk" --rw="$2" --bs="$3" --iodepth="$4" --ioengine=libaio \
			--direct=1 --time_based --runtime="$fio_secs" --minimal > /tmp/fio 2>&1; then
			awk -F';' -v j="$1" 'NF > 49 { print "linux-guest: fio " j " " $8 + $49 " " $7 + $48 }' /tmp/fio
		else echo "linux-guest: fio $1 FAILED: $(cat /tmp/fio)"; fi
	done
	;;
poweroff) ;;
*) echo "linux-guest: unknown guest.mode=$mode (poweroff, panic, shell, stay, idle, net, stream, demo, blk-loop, disk-write, disk-verify or fio); powering off" ;;
esac
echo "linux-guest: powering off"
poweroff -f
