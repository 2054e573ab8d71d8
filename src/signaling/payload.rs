//! An event's first argument as raw JSON text, read from the packet so that every case
//! PROTOCOL.md allows is told apart — no argument at all reads as `null`
//! (`socket.emit('leave-room')`), and binary attachments are refused rather than decoded.
//! It stays raw: a relayed offer goes on byte for byte, and every other handler parses it
//! ([`crate::protocol`]).

use serde_json::value::RawValue;
use socketioxide::handler::Value;

use crate::protocol::ProtocolError;

/// An event's first argument as raw JSON, or the error its sender gets.
pub(super) fn first_argument(value: &Value) -> Result<Box<RawValue>, ProtocolError> {
    let binary = || ProtocolError::invalid("Binary attachments are not accepted");
    match value {
        Value::Str(_, Some(attachments)) if !attachments.is_empty() => Err(binary()),
        Value::Str(text, _) => {
            // The packet data is `["event", arg1, arg2, …]`; only the first argument counts.
            let args: Vec<&RawValue> = serde_json::from_str(text)
                .map_err(|_| ProtocolError::invalid("The payload is not valid JSON"))?;
            Ok(args
                .get(1)
                .map_or_else(|| RawValue::NULL.to_owned(), |arg| (*arg).to_owned()))
        }
        Value::Bytes(_) => Err(binary()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(raw: &str) -> Value {
        Value::Str(raw.to_owned().into(), None)
    }

    fn first(raw: &str) -> String {
        first_argument(&text(raw)).unwrap().get().to_owned()
    }

    #[test]
    fn first_argument_or_null() {
        assert_eq!(first(r#"["leave-room"]"#), "null");
        assert_eq!(
            first(r#"["e",{"b":1.0,"a":1e3},2]"#),
            r#"{"b":1.0,"a":1e3}"#
        );
        assert_eq!(first(r#"["e",null]"#), "null");
        assert!(first_argument(&text(r#"["e",{"a":]"#)).is_err());
    }

    #[test]
    fn binary_is_refused() {
        let mut bins = std::collections::VecDeque::new();
        bins.push_back(bytes::Bytes::from_static(b"x"));
        let v = Value::Str(
            "[\"e\",{\"_placeholder\":true,\"num\":0}]"
                .to_owned()
                .into(),
            Some(bins),
        );
        assert!(first_argument(&v).is_err());
        assert!(first_argument(&Value::Bytes(bytes::Bytes::from_static(b"x"))).is_err());
    }
}
