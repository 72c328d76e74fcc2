//! Wires the daemon's stages, from the last to the first, with bounded channels.
