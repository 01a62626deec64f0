/* Includes Xen's public ring and protocol headers (Debian's libxen-dev) for the shared-ring
 * tests. ring.h leaves the barriers to the includer; these are the x86_64 definitions Xen's
 * own user-space tools use (xenctrl.h): a locked add as the full barrier, compiler barriers
 * for read and write ordering (x86 is TSO). */
#ifndef SHARED_RING_XEN_ABI_H
#define SHARED_RING_XEN_ABI_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Ask for the current interface (else ring.h maps xen_mb() to an undefined mb()). */
#define __XEN_INTERFACE_VERSION__ 0x00040e00

#define xen_barrier() __asm__ __volatile__("" ::: "memory")
#define xen_mb() __asm__ __volatile__("lock addl $0, -32(%%rsp)" ::: "memory")
#define xen_rmb() xen_barrier()
#define xen_wmb() xen_barrier()

#include <xen/xen.h>
#include <xen/grant_table.h>
#include <xen/io/ring.h>
#include <xen/io/blkif.h>
#include <xen/io/netif.h>
#include <xen/io/xs_wire.h>
#include <xen/io/xenbus.h>

#endif
