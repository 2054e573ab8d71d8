//! An event's first argument as JSON, read from the raw packet so that every case
//! PROTOCOL.md allows is told apart — no argument at all reads as `null`
//! (`socket.emit('leave-room')`), and binary attachments are refused rather than decoded.

use serde_json::Value as JsonValue;
use socketioxide::handler::Value;

use crate::protocol::ProtocolError;

/// An event's first argument as JSON, or the error its sender gets.
pub(super) fn first_argument(value: &Value) -> Result<JsonValue, ProtocolError> {
    let binary = || ProtocolError::invalid("Binary attachments are not accepted");
    match value {
        Value::Str(_, Some(attachments)) if !attachments.is_empty() => Err(binary()),
        Value::Str(text, _) => {
            // The packet data is `["event", arg1, arg2, …]`; only the first argument counts.
            let args: Vec<JsonValue> = serde_json::from_str(text)
                .map_err(|_| ProtocolError::invalid("The payload is not valid JSON"))?;
            Ok(args.into_iter().nth(1).unwrap_or(JsonValue::Null))
        }
        Value::Bytes(_) => Err(binary()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn text(raw: &str) -> Value {
        Value::Str(raw.to_owned().into(), None)
    }

    #[test]
    fn first_argument_or_null() {
        assert_eq!(
            first_argument(&text(r#"["leave-room"]"#)),
            Ok(JsonValue::Null)
        );
        assert_eq!(
            first_argument(&text(r#"["e",{"a":1},2]"#)),
            Ok(json!({"a": 1}))
        );
        assert_eq!(first_argument(&text(r#"["e",null]"#)), Ok(JsonValue::Null));
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
