//! The gossipchain node binary.

fn main() {}
