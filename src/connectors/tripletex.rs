//! Tripletex connector (in progress).
