//! `hil record`: a session on the desk becomes a draft scenario. The live session
//! (`session`: the broker, the board, the person's commands, the stop) records a trace;
//! `draft` turns that trace into steps, a pure function; `file` writes the draft with
//! its header, whole or not at all.

pub mod draft;
pub mod file;
pub mod session;
