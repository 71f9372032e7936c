//! Docker's image reference grammar (`[registry[:port]/]name[:tag][@digest]`), as the
//! distribution project's `reference/regexp.go` writes it.
//!
//! Why not a crate: `oci-spec`'s `Reference` (which this replaced) spells the tag as
//! `[\w][\w.-]{0,127}` with Unicode `\w`, and compiling that regex took 100–150 ms of CPU on
//! every command that validates a blueprint: two thirds of a no-op `scale apply`. Go's `\w` is
//! ASCII (`[0-9A-Za-z_]`), so the grammar below is Docker's exactly and compiles in well under
//! a millisecond; the `regex` crate does the matching.

use std::sync::OnceLock;

use regex::Regex;

/// Longest repository name Docker accepts (`NameTotalLengthMax`).
const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Why a reference is refused, in Docker's words where it has them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("repository name must not be more than {NAME_TOTAL_LENGTH_MAX} characters")]
    NameTooLong,
    #[error("invalid checksum digest length")]
    DigestLength,
}

/// The whole grammar, anchored: group 1 is the name, group 2 the tag, group 3 the digest.
fn grammar() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        let alnum = "[a-z0-9]+";
        let separator = "(?:[._]|__|[-]+)";
        let component = format!("{alnum}(?:{separator}{alnum})*");
        let domain_component = "(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])";
        let ipv6 = r"\[(?:[a-fA-F0-9:]+)\]";
        let domain = format!(r"(?:{domain_component}(?:\.{domain_component})*|{ipv6})(?::[0-9]+)?");
        let name = format!("(?:{domain}/)?{component}(?:/{component})*");
        let tag = "[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}";
        let digest = "[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}";
        Regex::new(&format!("^({name})(?::({tag}))?(?:@({digest}))?$")).expect("the reference grammar is a valid regex")
    })
}

/// Checks `text` against Docker's reference grammar, without normalising it.
pub fn check(text: &str) -> Result<(), ReferenceError> {
    let caps = grammar().captures(text).ok_or(ReferenceError::InvalidFormat)?;
    let name = &caps[1];
    // Docker counts the path after the domain, as oci-spec did.
    let path = match name.split_once('/') {
        Some((first, rest)) if first.contains(['.', ':']) || first == "localhost" => rest,
        _ => name,
    };
    if path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(digest) = caps.get(3)
        && let Some(("sha256", hex)) = digest.as_str().split_once(':')
        && hex.len() != 64
    {
        return Err(ReferenceError::DigestLength);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_what_docker_accepts() {
        let sha = "a".repeat(64);
        for ok in [
            "nginx",
            "nginx:1.27",
            "library/nginx:latest",
            "ghcr.io/org/app:v2",
            "localhost:5000/app",
            "registry.example.com:5000/a/b/c:1.0-rc_1",
            "a__b/c--d:x",
            "[::1]:5000/app:tag",
            &format!("nginx@sha256:{sha}"),
            &format!("nginx:1.27@sha256:{sha}"),
            "shop/web:APP_Version.2",
        ] {
            assert_eq!(check(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn refuses_what_docker_refuses() {
        for bad in
            ["", "we b", "Nginx", "nginx::1", "nginx:", ":tag", "a/", "-a", "a..b", "nginx:ünïcode", "nginx@sha256:abc"]
        {
            assert!(check(bad).is_err(), "{bad:?} was accepted");
        }
        assert_eq!(check(&format!("nginx:{}", "t".repeat(129))), Err(ReferenceError::InvalidFormat));
        assert_eq!(check(&format!("nginx@sha256:{}", "a".repeat(63))), Err(ReferenceError::DigestLength));
        assert_eq!(check(&"a".repeat(256)), Err(ReferenceError::NameTooLong));
        assert_eq!(check(&format!("example.com/{}", "a".repeat(255))), Ok(()));
    }
}
