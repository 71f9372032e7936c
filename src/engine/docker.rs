//! The Docker engine over bollard (being written).
