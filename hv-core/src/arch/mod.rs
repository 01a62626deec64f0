//! Architecture code. Everything that touches x86 registers, descriptor tables, page tables or
//! devices lives behind this one module boundary.
pub mod x86_64;
pub use self::x86_64::*;
