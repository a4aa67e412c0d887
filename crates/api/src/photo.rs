//! Citizens' photos: metadata stripped before anything is stored.
//!
//! JPEG: every APP1–APP15 segment (EXIF with its GPS position, XMP, IPTC, maker notes, ICC
//! profiles) and every comment is dropped; APP0 (JFIF), the tables and the image data are copied
//! unchanged, so the picture is the same, pixel for pixel. PNG: only the chunks that draw the
//! picture are kept (`IHDR`, `PLTE`, `tRNS`, `gAMA`, `cHRM`, `sRGB`, `sBIT`, `bKGD`, `pHYs`,
//! `IDAT`, `IEND`); text, `eXIf` and time chunks are dropped. Anything else is refused.

/// Largest photo accepted, in bytes.
pub const MAX_PHOTO: usize = 5 * 1024 * 1024;

/// Why a photo is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhotoError {
    /// Neither JPEG nor PNG.
    #[error("the photo must be a JPEG or PNG image")]
    Unsupported,
    /// It claims to be one but its structure is broken.
    #[error("the photo is not a valid {0} file (truncated or malformed)")]
    Malformed(&'static str),
}

/// The photo without its metadata, and its media type.
pub fn strip(data: &[u8]) -> Result<(Vec<u8>, &'static str), PhotoError> {
    if data.starts_with(&[0xFF, 0xD8]) {
        strip_jpeg(data).map(|d| (d, "image/jpeg"))
    } else if data.starts_with(PNG_SIGNATURE) {
        strip_png(data).map(|d| (d, "image/png"))
    } else {
        Err(PhotoError::Unsupported)
    }
}

fn strip_jpeg(data: &[u8]) -> Result<Vec<u8>, PhotoError> {
    let bad = || PhotoError::Malformed("JPEG");
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(&data[..2]);
    let mut pos = 2;
    loop {
        if data.get(pos) != Some(&0xFF) {
            return Err(bad());
        }
        // Fill bytes: any number of 0xFF before the marker.
        while data.get(pos + 1) == Some(&0xFF) {
            pos += 1;
        }
        let marker = *data.get(pos + 1).ok_or_else(bad)?;
        match marker {
            // Start of scan: the entropy-coded data and everything after are copied as they are.
            0xDA => {
                out.extend_from_slice(&data[pos..]);
                return Ok(out);
            }
            // End of image before any scan.
            0xD9 => return Err(bad()),
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                out.extend_from_slice(&data[pos..pos + 2]);
                pos += 2;
            }
            _ => {
                let hi = *data.get(pos + 2).ok_or_else(bad)?;
                let lo = *data.get(pos + 3).ok_or_else(bad)?;
                let len = usize::from(u16::from_be_bytes([hi, lo]));
                if len < 2 {
                    return Err(bad());
                }
                let end = pos + 2 + len;
                let segment = data.get(pos..end).ok_or_else(bad)?;
                let metadata = matches!(marker, 0xE1..=0xEF | 0xFE);
                if !metadata {
                    out.extend_from_slice(segment);
                }
                pos = end;
            }
        }
    }
}

const PNG_SIGNATURE: &[u8] = &[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];

fn strip_png(data: &[u8]) -> Result<Vec<u8>, PhotoError> {
    const KEEP: [&[u8; 4]; 11] = [
        b"IHDR", b"PLTE", b"tRNS", b"gAMA", b"cHRM", b"sRGB", b"sBIT", b"bKGD", b"pHYs", b"IDAT",
        b"IEND",
    ];
    let bad = || PhotoError::Malformed("PNG");
    let mut out = Vec::with_capacity(data.len());
    out.extend_from_slice(PNG_SIGNATURE);
    let mut pos = PNG_SIGNATURE.len();
    loop {
        let head = data.get(pos..pos + 8).ok_or_else(bad)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let kind = &head[4..8];
        let end = pos
            .checked_add(12)
            .and_then(|p| p.checked_add(len))
            .ok_or_else(bad)?;
        let chunk = data.get(pos..end).ok_or_else(bad)?;
        if KEEP.iter().any(|k| k.as_slice() == kind) {
            out.extend_from_slice(chunk);
        }
        pos = end;
        if kind == b"IEND" {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(marker: u8, body: &[u8]) -> Vec<u8> {
        let len = u16::try_from(body.len() + 2).expect("short");
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&len.to_be_bytes());
        s.extend_from_slice(body);
        s
    }

    #[test]
    fn jpeg_loses_exif_xmp_and_comments_and_keeps_the_image() {
        let mut jpeg = vec![0xFF, 0xD8];
        jpeg.extend(segment(0xE0, b"JFIF\0\x01\x02"));
        jpeg.extend(segment(0xE1, b"Exif\0\0GPS 45.64 25.58"));
        jpeg.extend(segment(0xE1, b"http://ns.adobe.com/xap/1.0/ location"));
        jpeg.extend(segment(0xFE, b"taken at home"));
        jpeg.extend(segment(0xDB, &[0; 65]));
        jpeg.extend(segment(0xC0, &[8, 0, 1, 0, 1, 1, 1, 0x11, 0]));
        let scan = [0xFF, 0xDA, 0, 2, 0x12, 0x34, 0xFF, 0x00, 0xFF, 0xD9];
        jpeg.extend_from_slice(&scan);
        let (out, mime) = strip(&jpeg).expect("valid");
        assert_eq!(mime, "image/jpeg");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("GPS") && !text.contains("adobe") && !text.contains("home"));
        assert!(text.contains("JFIF"));
        assert!(out.ends_with(&scan));
        assert_eq!(
            strip(&out).expect("again").0,
            out,
            "stripping is idempotent"
        );
    }

    #[test]
    fn png_loses_text_and_exif_chunks() {
        fn chunk(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
            let mut c = u32::try_from(body.len())
                .expect("short")
                .to_be_bytes()
                .to_vec();
            c.extend_from_slice(kind);
            c.extend_from_slice(body);
            c.extend_from_slice(&[0, 0, 0, 0]);
            c
        }
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend(chunk(b"IHDR", &[0; 13]));
        png.extend(chunk(b"tEXt", b"Author\0Ana Pop"));
        png.extend(chunk(b"eXIf", b"MM\0*GPS"));
        png.extend(chunk(b"IDAT", &[1, 2, 3]));
        png.extend(chunk(b"IEND", b""));
        let (out, mime) = strip(&png).expect("valid");
        assert_eq!(mime, "image/png");
        let text = String::from_utf8_lossy(&out);
        assert!(!text.contains("Ana") && !text.contains("GPS"));
        assert!(text.contains("IHDR") && text.contains("IDAT") && text.contains("IEND"));
    }

    #[test]
    fn other_and_broken_files_are_refused() {
        assert_eq!(strip(b"GIF89a...."), Err(PhotoError::Unsupported));
        assert_eq!(strip(b""), Err(PhotoError::Unsupported));
        assert_eq!(
            strip(&[0xFF, 0xD8, 0xFF, 0xE1, 0x00]),
            Err(PhotoError::Malformed("JPEG"))
        );
        assert_eq!(
            strip(&[0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF, 1, 2]),
            Err(PhotoError::Malformed("JPEG"))
        );
        let mut png = PNG_SIGNATURE.to_vec();
        png.extend_from_slice(&[0xFF, 0xFF, 0xFF, 0xFF, b'I', b'D', b'A', b'T']);
        assert_eq!(strip(&png), Err(PhotoError::Malformed("PNG")));
    }
}
