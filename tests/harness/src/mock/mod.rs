//! Mock MyOperator APIs on 127.0.0.1: the one tests script, and the one
//! benchmarks and the reliability suite make misbehave.

pub mod faulty;
pub mod scripted;
