//! Terminal output: lines to stdout that end quietly when the reader goes away (`| head`),
//! and errors as one readable line.

use std::io::Write;

/// Writes one line to stdout; a closed pipe ends the program successfully, as Unix tools do.
pub fn line(args: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.write_all(b"\n")) {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: cannot write to stdout: {e}");
        std::process::exit(1);
    }
}

/// Prints a line to stdout (see [`line`]).
macro_rules! say {
    ($($arg:tt)*) => { $crate::output::line(format_args!($($arg)*)) };
}
pub(crate) use say;

/// An error and its causes on one line, leaving out causes the message already quotes.
pub fn one_line(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let c = cause.to_string();
        if !text.contains(&c) {
            text.push_str(": ");
            text.push_str(&c);
        }
    }
    text
}

/// Whether the broker refused the command for want of permission.
pub fn is_unauthorized(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<quiver_sdk::Error>()
            .and_then(quiver_sdk::Error::code)
            == Some(quiver_sdk::ErrorCode::UNAUTHORIZED)
    })
}

#[cfg(test)]
mod tests {
    use super::{is_unauthorized, one_line};

    #[test]
    fn a_refusal_is_recognised_under_any_context() {
        let refused = quiver_sdk::Error::Broker {
            api: "produce",
            source: quiver_sdk::WireError::new(quiver_sdk::ErrorCode::UNAUTHORIZED, "no"),
        };
        assert!(is_unauthorized(
            &anyhow::Error::new(refused).context("producing")
        ));
        assert!(!is_unauthorized(&anyhow::anyhow!("other")));
    }

    #[test]
    fn causes_already_quoted_are_left_out() {
        let inner = std::io::Error::other("disk full");
        let err = anyhow::Error::new(inner).context("writing segment: disk full");
        assert_eq!(one_line(&err), "writing segment: disk full");
        let err = anyhow::anyhow!("root").context("outer");
        assert_eq!(one_line(&err), "outer: root");
    }
}
