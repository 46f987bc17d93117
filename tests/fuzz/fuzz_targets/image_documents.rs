//! OCI image documents as a registry or an image archive hands them over.
//! The input is up to five sections separated by `\n%%\n`:
//! media type (empty: none), manifest or index, image config, the
//! image's `/etc/passwd`, its `/etc/group`.
//!
//! Drives: `classify`, `parse_index` + platform selection,
//! `parse_manifest` + `parse_config` + `ResolvedImage::new` (digests,
//! diff_ids, layer media types) + `total_size`, digest conversions, and
//! `User` resolution against the image's passwd/group. Asserted besides
//! "no panic": a digest that parses converts to oci-spec and back to
//! itself; a resolved image has one layer per manifest layer.

#![no_main]

use libfuzzer_sys::fuzz_target;
use vmrun_fuzz::input::sections;
use vmrun_image::digest::Digest;
use vmrun_image::image::{classify, parse_config, parse_index, parse_manifest, ResolvedImage};
use vmrun_image::{user, Platform};

const SEP: &[u8] = b"\n%%\n";
const REFERENCE: &str = "fuzz.example/image:latest";

fn check_digest(text: &str) {
    if let Ok(d) = text.parse::<Digest>() {
        let oci = d.to_oci();
        let back = Digest::from_oci(&oci).ok();
        assert_eq!(
            back.as_ref(),
            Some(&d),
            "digest {text:?} does not round-trip"
        );
    }
}

fuzz_target!(init: vmrun_fuzz::crash_stack::install(), |data: &[u8]| {
    let parts = sections(data, SEP, 5);
    let part = |i: usize| parts.get(i).copied().unwrap_or_default();
    let media_type = String::from_utf8_lossy(part(0)).into_owned();
    let media_type = (!media_type.is_empty()).then_some(media_type.as_str());
    let body = part(1);

    let _ = classify(REFERENCE, media_type, body);

    if let Ok(index) = parse_index(REFERENCE, body) {
        for d in index.manifests() {
            check_digest(d.digest().as_ref());
        }
        if let Ok(d) = Platform::default().select(REFERENCE, &index) {
            let _ = Digest::from_oci(d.digest());
        }
    }

    let config = parse_config(REFERENCE, part(2));
    if let Ok(manifest) = parse_manifest(REFERENCE, body) {
        check_digest(manifest.config().digest().as_ref());
        if let Ok(config) = config.as_ref() {
            let digest = Digest::sha256_of(body);
            let size = body.len() as u64;
            if let Ok(image) =
                ResolvedImage::new(REFERENCE, digest, size, &manifest, config.clone())
            {
                assert_eq!(image.layers.len(), manifest.layers().len());
                let _ = image.total_size();
            }
        }
    }

    if let Ok(config) = config {
        let spec = config
            .config()
            .as_ref()
            .and_then(|c| c.user().clone())
            .unwrap_or_default();
        let passwd = String::from_utf8_lossy(part(3));
        let group = String::from_utf8_lossy(part(4));
        let _ = user::resolve(&spec, Some(&passwd), Some(&group));
    }
    if let Ok(text) = std::str::from_utf8(part(1)) {
        check_digest(text.trim());
    }
});
