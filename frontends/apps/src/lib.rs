//! Code shared by the example DomUs.
#![no_std]

extern crate alloc;

pub mod net;
pub mod pingpong;
pub mod split;
