//! The correctness harness, public so that you can point it at your own IPC
//! code: run closures in forked processes with deadlines ([`fork`]),
//! generate message sizes biased toward the boundaries where IPC breaks
//! ([`sizes`]), and make messages that prove their own identity and
//! integrity ([`payload`]).

pub mod fork;
pub mod payload;
pub mod sizes;
