//! One module per subcommand.

pub mod demo;
pub mod eval;
pub mod predict;
pub mod train;
pub mod tune;
