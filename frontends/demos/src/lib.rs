//! Code shared by the demo DomUs: the network set-up of the smoltcp programs ([`net`]) and
//! the ping/pong ring protocol ([`pingpong`]).
#![no_std]

extern crate alloc;

pub mod net;
pub mod pingpong;
