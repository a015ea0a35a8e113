//! The console's input when stdin is a terminal and output is human: a prompt, line editing
//! and history (rustyline), with the node's events and replies printed above the prompt.
//!
//! Rules it keeps: used only when stdin is a terminal and `--json` is off, so piped stdin and
//! `--json` read and print exactly as before; a line is cut at [`MAX_LINE_BYTES`] as piped
//! lines are; Ctrl-C sends `quit` (the node stops, as the signal stops it without an editor);
//! Ctrl-D ends input as the end of piped stdin does.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use rustyline::error::ReadlineError;
use rustyline::{DefaultEditor, ExternalPrinter};
use tokio::sync::mpsc;

use crate::console::{Line, MAX_LINE_BYTES};

/// The prompt.
pub const PROMPT: &str = "gossipchain> ";

/// The editor's printer, once an editor runs: output goes above the prompt through it.
static PRINTER: OnceLock<Mutex<Box<dyn ExternalPrinter + Send>>> = OnceLock::new();

/// True when the console should edit lines: stdin is a terminal and output is for people.
pub fn wanted(json: bool) -> bool {
    !json && std::io::stdin().is_terminal()
}

/// Prints `line` above the prompt; false when no editor runs (the caller prints it itself).
pub fn print_above_prompt(line: &str) -> bool {
    let Some(printer) = PRINTER.get() else {
        return false;
    };
    match printer.lock() {
        Ok(mut printer) => printer.print(format!("{line}\n")).is_ok(),
        Err(_) => false,
    }
}

/// Reads edited lines into `lines` until Ctrl-D, an error, or the receiver is gone; returns
/// false without reading anything if no editor could be made (read stdin plainly then).
pub fn read_lines(lines: &mpsc::Sender<Line>) -> bool {
    let Ok(mut editor) = DefaultEditor::new() else {
        return false;
    };
    if let Ok(printer) = editor.create_external_printer() {
        let _ = PRINTER.set(Mutex::new(Box::new(printer)));
    }
    loop {
        let line = match editor.readline(PROMPT) {
            Ok(text) => {
                if !text.trim().is_empty() {
                    let _ = editor.add_history_entry(text.as_str());
                }
                cut(text)
            }
            Err(ReadlineError::Interrupted) => Line::Text("quit".to_string()),
            Err(_) => return true,
        };
        if lines.blocking_send(line).is_err() {
            return true;
        }
    }
}

/// A typed line, cut at [`MAX_LINE_BYTES`] (on a character boundary) like a piped one.
fn cut(text: String) -> Line {
    if text.len() <= MAX_LINE_BYTES {
        return Line::Text(text);
    }
    let mut end = MAX_LINE_BYTES;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    Line::TooLong(text[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typed_line_over_the_cap_is_cut_on_a_character_boundary() {
        assert_eq!(cut("mine 2".into()), Line::Text("mine 2".into()));
        let long = "é".repeat(MAX_LINE_BYTES);
        let Line::TooLong(kept) = cut(long) else {
            panic!("a long line is cut");
        };
        assert_eq!(kept.len(), MAX_LINE_BYTES);
    }

    #[test]
    fn json_output_never_edits_lines() {
        assert!(!wanted(true));
    }

    #[test]
    fn without_an_editor_nothing_is_printed_above_a_prompt() {
        assert!(PRINTER.get().is_some() || !print_above_prompt("x"));
    }
}
