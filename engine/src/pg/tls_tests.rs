//! TLS against a throwaway cluster that accepts TCP connections only over TLS
//! (`hostssl`), with a CA and certificates made here.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

use super::cluster::{ClusterOptions, ServerTls, TempCluster, OMNIBUS_APP_ROLE};
use super::conn::{ConnError, ConnSpec};

struct Pki {
    dir: tempfile::TempDir,
    ca: PathBuf,
    other_ca: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    server: ServerTls,
}

fn ca(name: &str) -> (String, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), Issuer::new(params, key))
}

fn leaf(issuer: &Issuer<'_, KeyPair>, names: &[&str], cn: &str) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn pki() -> Pki {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, issuer) = ca("Rewind test CA");
    let (other_pem, _) = ca("Some other CA");
    // The server's certificate names `localhost` only: 127.0.0.1 is a wrong host name.
    let (srv_cert, srv_key) = leaf(&issuer, &["localhost"], "localhost");
    let (cli_cert, cli_key) = leaf(&issuer, &[], OMNIBUS_APP_ROLE);
    Pki {
        ca: write(dir.path(), "ca.crt", &ca_pem),
        other_ca: write(dir.path(), "other.crt", &other_pem),
        client_cert: write(dir.path(), "client.crt", &cli_cert),
        client_key: write(dir.path(), "client.key", &cli_key),
        server: ServerTls {
            cert_pem: srv_cert,
            key_pem: srv_key,
            client_ca_pem: Some(ca_pem),
        },
        dir,
    }
}

/// A non-superuser that logs in over TCP with a password (scram-sha-256), as an external
/// database (RDS, Cloud SQL) has it.
const TLS_ROLE: &str = "rewind_tls";
const TLS_PASSWORD: &str = "tls-test-pw";

fn tcp_spec(c: &TempCluster, host: &str, mode: &str, root: Option<&Path>) -> ConnSpec {
    ConnSpec {
        host: host.into(),
        port: c.port(),
        user: TLS_ROLE.into(),
        password: super::conn::Secret::new(Some(TLS_PASSWORD.into())),
        dbname: "postgres".into(),
        sslmode: Some(mode.into()),
        sslrootcert: root.map(|p| p.display().to_string()),
        ..ConnSpec::omnibus_default()
    }
}

fn encrypted(spec: &ConnSpec) -> Result<bool, String> {
    let mut client = spec.connect().map_err(|e| e.to_string())?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

#[test]
fn tls_modes_against_a_hostssl_only_server() {
    let pki = pki();
    let c = TempCluster::start_with(ClusterOptions {
        listen_tcp: true,
        tls: Some(pki.server.clone()),
        hba_lines: vec![
            format!("hostssl all {OMNIBUS_APP_ROLE} 127.0.0.1/32 cert"),
            "hostssl all all 127.0.0.1/32 scram-sha-256".into(),
        ],
        ..ClusterOptions::default()
    })
    .expect("cluster");
    c.connect("postgres")
        .unwrap()
        .batch_execute(&format!(
            "CREATE ROLE {TLS_ROLE} LOGIN PASSWORD '{TLS_PASSWORD}'"
        ))
        .unwrap();

    // require: encrypted, no certificate check.
    assert_eq!(
        encrypted(&tcp_spec(&c, "127.0.0.1", "require", None)),
        Ok(true)
    );
    // prefer and allow end up encrypted too (allow after plain text is refused).
    assert_eq!(
        encrypted(&tcp_spec(&c, "127.0.0.1", "prefer", None)),
        Ok(true)
    );
    assert_eq!(
        encrypted(&tcp_spec(&c, "127.0.0.1", "allow", None)),
        Ok(true)
    );

    // verify-full with the right CA and the name on the certificate.
    let full = tcp_spec(&c, "localhost", "verify-full", Some(&pki.ca));
    assert_eq!(encrypted(&full), Ok(true));
    // verify-ca checks the chain only: the IP address is fine.
    assert_eq!(
        encrypted(&tcp_spec(&c, "127.0.0.1", "verify-ca", Some(&pki.ca))),
        Ok(true)
    );

    // verify-full with a host name the certificate does not carry.
    let e = encrypted(&tcp_spec(&c, "127.0.0.1", "verify-full", Some(&pki.ca))).unwrap_err();
    assert!(e.contains("not valid for name"), "{e}");
    assert!(e.contains("must name `127.0.0.1`"), "{e}");
    // verify-ca / verify-full with another CA.
    for mode in ["verify-ca", "verify-full"] {
        let e = encrypted(&tcp_spec(&c, "localhost", mode, Some(&pki.other_ca))).unwrap_err();
        assert!(e.contains("UnknownIssuer"), "{mode}: {e}");
        assert!(e.contains("other.crt"), "{mode}: {e}");
    }
    // verify-full without any root certificate is refused before connecting.
    match tcp_spec(&c, "localhost", "verify-full", None).connect() {
        Err(ConnError::Tls { detail, .. }) => assert!(detail.contains("sslrootcert"), "{detail}"),
        Err(other) => panic!("expected a TLS settings error, got {other}"),
        Ok(_) => panic!("verify-full connected without a root certificate"),
    }
    // disable against a hostssl-only server: refused by the server.
    let e = encrypted(&tcp_spec(&c, "127.0.0.1", "disable", None)).unwrap_err();
    assert!(e.contains("no pg_hba.conf entry"), "{e}");
    // A typo is not plain text.
    let e = encrypted(&tcp_spec(&c, "127.0.0.1", "requir", None)).unwrap_err();
    assert!(e.contains("invalid sslmode `requir`"), "{e}");

    // A client certificate (cert authentication for the application role).
    let mut with_cert = full.clone();
    with_cert.user = OMNIBUS_APP_ROLE.into();
    with_cert.sslcert = Some(pki.client_cert.display().to_string());
    with_cert.sslkey = Some(pki.client_key.display().to_string());
    assert_eq!(encrypted(&with_cert), Ok(true));
    let mut no_cert = full.clone();
    no_cert.user = OMNIBUS_APP_ROLE.into();
    assert!(encrypted(&no_cert).is_err());
    // prefer falls back to plain text when refused over TLS, and tells both refusals.
    let mut prefer = tcp_spec(&c, "127.0.0.1", "prefer", None);
    prefer.user = OMNIBUS_APP_ROLE.into();
    let e = encrypted(&prefer).unwrap_err();
    assert!(
        e.contains("with TLS: ") && e.contains("certificate") && e.contains("then without TLS: "),
        "{e}"
    );

    // --database-url: sslmode, sslrootcert, application_name and connect_timeout honoured.
    let url = format!(
        "postgresql://{TLS_ROLE}:{TLS_PASSWORD}@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&application_name=tls-test&connect_timeout=5",
        c.port(),
        pki.ca.display()
    );
    let spec = ConnSpec::from_url_with_env(&url, &|_| None).unwrap();
    assert_eq!(spec.connect_timeout, Some(5));
    let mut client = spec.connect().unwrap();
    let row = client
        .query_one(
            "SELECT s.ssl, current_setting('application_name') FROM pg_stat_ssl s WHERE pid = pg_backend_pid()",
            &[],
        )
        .unwrap();
    assert!(row.get::<_, bool>(0));
    assert_eq!(row.get::<_, String>(1), "tls-test");

    // The unix socket keeps working whatever sslmode says (libpq ignores it there),
    // through the peer map.
    let mut sock = c.conn_spec("postgres");
    sock.sslmode = Some("verify-full".into());
    sock.connect()
        .expect("socket connection with sslmode=verify-full");

    // pg_dump gets the same settings: it connects with the right CA, not with another.
    let pg_dump = |spec: &ConnSpec| {
        spec.client_command(&c.tool_path("pg_dump"), "tls-test")
            .args(["--schema-only", "--no-owner"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let cmd = with_cert.client_command(&c.tool_path("pg_dump"), "tls-test");
    let envs: Vec<_> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().to_string(),
                v.map(|v| v.to_string_lossy().to_string()),
            )
        })
        .collect();
    for (k, v) in [
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", &*pki.ca.display().to_string()),
        ("PGSSLCERT", &*pki.client_cert.display().to_string()),
        ("PGSSLKEY", &*pki.client_key.display().to_string()),
    ] {
        assert!(
            envs.contains(&(k.to_string(), Some(v.to_string()))),
            "{k} in {envs:?}"
        );
    }
    let ok = pg_dump(&with_cert);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let mut wrong = with_cert.clone();
    wrong.sslrootcert = Some(pki.other_ca.display().to_string());
    let bad = pg_dump(&wrong);
    assert!(!bad.status.success());
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(err.contains("certificate verify failed"), "{err}");
    drop(pki.dir);
}
