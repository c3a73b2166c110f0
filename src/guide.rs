//! The pitfalls guide (being written).
