//! QEMU scenario harness.
