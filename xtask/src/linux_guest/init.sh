#!/bin/sh
# /init of the PVH Linux guest's initramfs (xtask/src/linux_guest/init.sh): busybox only.
# Reports what the kernel found of Xen, then acts on `guest.mode=` of the kernel command line:
#   poweroff (default): print "linux-guest: powering off" and power off (SCHEDOP_shutdown poweroff)
#   panic:              crash the kernel through sysrq (the domain ends as crashed)
#   shell:              a shell on the console, then power off
#   stay:               sleep forever
#   idle:               print "linux-guest: idling <n> s", sleep `guest.idle_secs=` (default 5),
#                       print "linux-guest: idle done" and power off (`cargo xtask bench pvh`)
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
idle_secs=5
for word in $(cat /proc/cmdline); do
	case "$word" in
	guest.mode=*) mode="${word#guest.mode=}" ;;
	guest.modules=*) modules="${word#guest.modules=}" ;;
	guest.idle_secs=*) idle_secs="${word#guest.idle_secs=}" ;;
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
poweroff) ;;
*) echo "linux-guest: unknown guest.mode=$mode (poweroff, panic, shell, stay or idle); powering off" ;;
esac
echo "linux-guest: powering off"
poweroff -f
