//! The peer API's authentication of a request, end to end as the server
//! runs it on unauthenticated bytes: header parsing, the clock window on an
//! attacker's timestamp (any i64), the replay guard and signature check,
//! with the fuzzer choosing the header, the clock, method, path and body.
#![no_main]
use libfuzzer_sys::fuzz_target;
use lumpy::sync::auth::{ReplayGuard, Secret, parse_header, sign, verify};

fuzz_target!(|data: &[u8]| {
    if data.len() < 8 {
        return;
    }
    let now = i64::from_le_bytes(data[..8].try_into().unwrap_or([0; 8]));
    let rest = &data[8..];
    let split = rest.iter().position(|b| *b == b'\n').unwrap_or(rest.len());
    let (head, body) = rest.split_at(split);
    let Ok(header) = std::str::from_utf8(head) else {
        return;
    };
    let Ok(secret) = Secret::parse("lumpy-link-v1:p:QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY") else {
        return;
    };
    let Ok(key) = secret.public_key() else { return };
    let guard = ReplayGuard::default();
    if let Ok(presented) = parse_header(header) {
        let _ = verify(&presented, &key, "GET", "/v1/summary", body, now, &guard);
        let _ = verify(&presented, &key, "POST", "/v1/segments", body, now, &guard);
    }
    // A genuine header at the fuzzer's clock must verify once, then replay.
    if let Ok(genuine) = sign(&secret, "POST", "/v1/segments", now, body)
        && let Ok(presented) = parse_header(&genuine)
    {
        assert!(verify(&presented, &key, "POST", "/v1/segments", body, now, &guard).is_ok());
        assert!(verify(&presented, &key, "POST", "/v1/segments", body, now, &guard).is_err());
    }
});
