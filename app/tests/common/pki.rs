//! Certificates for TLS tests, made with openssl: a CA and certificates it signs. Shared by
//! the CLI's tests and the operator's (`#[path]`), so they are made one way.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `NAME.key`, `NAME.crt` and `NAME.pem` (key then certificate) signed by `ca` (self-signed
/// CA when `None`), with `ext` as the certificate's extensions.
pub fn make_cert(dir: &Path, name: &str, ca: Option<&str>, ext: &str) {
    let (key, csr, crt) = (
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.crt"),
    );
    let subject = format!("/CN={name}");
    openssl(
        dir,
        &[
            "req", "-newkey", "rsa:2048", "-nodes", "-keyout", &key, "-subj", &subject, "-out",
            &csr,
        ],
    );
    std::fs::write(dir.join(format!("{name}.ext")), ext).unwrap();
    let ext_file = format!("{name}.ext");
    let mut args = vec![
        "x509", "-req", "-in", &csr, "-days", "2", "-extfile", &ext_file,
    ];
    let (ca_crt, ca_key) = ca.map_or((String::new(), String::new()), |ca| {
        (format!("{ca}.crt"), format!("{ca}.key"))
    });
    match ca {
        None => args.extend(["-signkey", &key]),
        Some(_) => args.extend(["-CA", &ca_crt, "-CAkey", &ca_key, "-CAcreateserial"]),
    }
    args.extend(["-out", &crt]);
    openssl(dir, &args);
    let pem = std::fs::read_to_string(dir.join(&key)).unwrap()
        + &std::fs::read_to_string(dir.join(&crt)).unwrap();
    std::fs::write(dir.join(format!("{name}.pem")), pem).unwrap();
}

pub const CA_EXT: &str =
    "basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n";
