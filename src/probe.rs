//! What this kernel provides (being written).
