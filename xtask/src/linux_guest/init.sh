#!/bin/sh
# /init of the PVH Linux guest's initramfs (xtask/src/linux_guest/init.sh): busybox only.
# Reports what the kernel found of Xen, then acts on `guest.mode=` of the kernel command line:
#   poweroff (default): print "linux-guest: powering off" and power off (SCHEDOP_shutdown poweroff)
#   panic:              crash the kernel through sysrq (the domain ends as crashed)
#   shell:              a shell on the console, then power off
#   stay:               sleep forever
#   net:                eth0 up (guest.ip, guest.gw), ping (guest.ping), httpd on port 80, stay up
#   stream:             eth0 up and ping as net, then receive one TCP stream on port guest.port,
#                       forwarding it as it arrives to guest.peer=IP:PORT (if given); print its
#                       length and md5, then power off
# `guest.modules=1` loads the Xen block and network frontends from /lib/modules first.
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
for word in $(cat /proc/cmdline); do
	case "$word" in
	guest.mode=*) mode="${word#guest.mode=}" ;;
	guest.modules=*) modules="${word#guest.modules=}" ;;
	guest.ip=*) ip="${word#guest.ip=}" ;;
	guest.gw=*) gw="${word#guest.gw=}" ;;
	guest.ping=*) ping="${word#guest.ping=}" ;;
	guest.port=*) port="${word#guest.port=}" ;;
	guest.peer=*) peer="${word#guest.peer=}" ;;
	esac
done
if [ "$modules" = 1 ]; then
	for m in /lib/modules/*.ko; do
		[ -e "$m" ] || continue
		if insmod "$m"; then echo "linux-guest: loaded $m"; else echo "linux-guest: insmod $m failed"; fi
	done
fi
echo "linux-guest: mode $mode"
case "$mode" in
panic)
	echo "linux-guest: panicking through sysrq"
	echo 1 > /proc/sys/kernel/sysrq
	echo c > /proc/sysrq-trigger
	;;
shell)
	busybox --install -s /bin
	setsid cttyhack sh
	;;
net|stream)
	# eth0 (xen-netfront) up with guest.ip/guest.gw, ping guest.ping (default: the gateway),
	# then (net) serve /www over HTTP on port 80 and stay up, or (stream) relay one stream.
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
	if [ "$mode" = stream ]; then
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
	else
		mkdir -p /www
		echo "hello from Linux on xen-netfront and the Rust netback" > /www/index.html
		httpd -p 80 -h /www
		echo "linux-guest: httpd serving on port 80"
		while :; do sleep 3600; done
	fi
	;;
stay)
	echo "linux-guest: staying up"
	while :; do sleep 3600; done
	;;
poweroff) ;;
*) echo "linux-guest: unknown guest.mode=$mode (poweroff, panic, shell or stay); powering off" ;;
esac
echo "linux-guest: powering off"
poweroff -f
