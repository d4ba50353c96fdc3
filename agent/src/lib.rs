//! The Sluice agent.
