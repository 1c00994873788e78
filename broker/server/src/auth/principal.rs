//! The principal a client certificate names.
//!
//! A verified client certificate (signed by a CA the broker trusts) names its holder as
//! `User:<CN>`, the common name of its subject, the way Kafka operators usually map
//! certificates (`ssl.principal.mapping.rules` extracting CN). A certificate with no
//! common name names its first subject alternative name instead (DNS name, e-mail or
//! URI), which is what modern certificates often carry alone.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

use quiver_metadata::Principal;

/// Why a certificate names nobody.
#[derive(Debug, thiserror::Error)]
pub enum CertificateNameError {
    #[error("the client certificate does not parse: {0}")]
    Unparsable(String),
    #[error(
        "the client certificate has neither a subject common name nor a subject alternative name"
    )]
    Nameless,
}

/// The principal of the end-entity certificate `der`.
pub fn from_certificate(der: &[u8]) -> Result<Principal, CertificateNameError> {
    let (_, cert) = X509Certificate::from_der(der)
        .map_err(|e| CertificateNameError::Unparsable(e.to_string()))?;
    let common_name = cert
        .subject()
        .iter_common_name()
        .find_map(|cn| cn.as_str().ok().map(str::to_string));
    if let Some(cn) = common_name.filter(|cn| !cn.is_empty()) {
        return Ok(Principal(format!("User:{cn}")));
    }
    let san = cert
        .subject_alternative_name()
        .ok()
        .flatten()
        .and_then(|ext| {
            ext.value.general_names.iter().find_map(|name| match name {
                GeneralName::DNSName(n) | GeneralName::RFC822Name(n) | GeneralName::URI(n) => {
                    Some((*n).to_string())
                }
                _ => None,
            })
        });
    san.map(|n| Principal(format!("User:{n}")))
        .ok_or(CertificateNameError::Nameless)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cert(cn: Option<&str>, sans: Vec<String>) -> Vec<u8> {
        let mut params = rcgen::CertificateParams::new(sans).expect("params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        let key = rcgen::KeyPair::generate().expect("key");
        params.self_signed(&key).expect("cert").der().to_vec()
    }

    #[test]
    fn the_common_name_names_the_holder() {
        let der = cert(Some("alice"), vec!["alice.example".into()]);
        assert_eq!(from_certificate(&der).expect("named").0, "User:alice");
    }

    #[test]
    fn without_a_common_name_the_first_san_does() {
        let der = cert(None, vec!["billing.svc.example".into()]);
        assert_eq!(
            from_certificate(&der).expect("named").0,
            "User:billing.svc.example"
        );
    }

    #[test]
    fn junk_and_nameless_certificates_are_errors() {
        assert!(matches!(
            from_certificate(b"not a certificate"),
            Err(CertificateNameError::Unparsable(_))
        ));
        let der = cert(None, vec![]);
        assert!(matches!(
            from_certificate(&der),
            Err(CertificateNameError::Nameless)
        ));
    }
}
