//! OASIS Common Alerting Protocol, version 1.2 (namespace `urn:oasis:names:tc:emergency:cap:1.2`):
//! parsing and validation of one `<alert>` document.
//!
//! What is checked is what the official CAP 1.2 XML Schema checks (element order and
//! multiplicity, enumerations, the `YYYY-MM-DDThh:mm:ss±hh:mm` date-times, `xs:language`,
//! `xs:integer`, `xs:decimal`), plus what the CAP 1.2 specification requires in its text and the
//! schema cannot say:
//!
//! - `identifier`, `sender` and the parts of `references` have no spaces, commas, `<` or `&`;
//! - an `Update` or a `Cancel` has `references` with at least one `sender,identifier,sent`;
//! - `scope` `Private` has `addresses`;
//! - a `polygon` is at least 4 `"lat,lon"` pairs, the first equal to the last, each a latitude in
//!   -90..=90 and a longitude in -180..=180; a `circle` is `"lat,lon radius_km"`.
//!
//! Coordinates come out as `(longitude, latitude)`, the project's order inside, and circle radii
//! in meters.
//!
//! Security: a document with a `<!DOCTYPE>` is refused before anything in it is read further, and
//! so is any entity reference other than the five predefined ones (`&lt;` `&gt;` `&amp;` `&apos;`
//! `&quot;`) and numeric character references. Nothing here ever opens a file or a connection:
//! external entities, external DTDs, XInclude and `xsi:schemaLocation` are never followed, and no
//! entity is ever expanded, so neither XXE nor "billion laughs" can happen.
//!
//! Text: UTF-8 (an optional byte-order mark is skipped); a document that declares ISO-8859-1
//! (Latin-1) is transcoded to UTF-8 first, byte for byte, as XML parsers do. Other encodings are
//! refused. Processing instructions (such as `<?xml-stylesheet?>`) and comments are ignored, and so
//! is the content of an XML Signature (`http://www.w3.org/2000/09/xmldsig#`) after the last
//! `<info>`, which the schema allows there. Text values are trimmed of surrounding XML
//! whitespace; enumerated values must match exactly, as the schema wants.

use std::borrow::Cow;

use chrono::{DateTime, Days, FixedOffset, NaiveDate, NaiveTime};
use geo::{Coord, LineString, Point, Polygon};
use quick_xml::events::{BytesStart, Event};
use quick_xml::name::{NamespaceResolver, ResolveResult};
use quick_xml::reader::NsReader;

/// Largest CAP document accepted, in bytes.
pub const MAX_CAP_BYTES: usize = 1024 * 1024;

/// The XML namespace of CAP 1.2, the only version accepted.
pub const NAMESPACE: &str = "urn:oasis:names:tc:emergency:cap:1.2";

/// Namespace prefix shared by all CAP versions since 1.1.
const CAP_NAMESPACE_PREFIX: &str = "urn:oasis:names:tc:emergency:cap:";
/// Namespace of CAP 1.0.
const CAP_1_0_NAMESPACE: &str = "http://www.incident.com/cap/1.0";
/// XML Signature, allowed (and skipped) at the end of `<alert>`.
const XMLDSIG_NAMESPACE: &str = "http://www.w3.org/2000/09/xmldsig#";
/// XML Schema instance: `xsi:schemaLocation` is tolerated (and never followed).
const XSI_NAMESPACE: &str = "http://www.w3.org/2001/XMLSchema-instance";

/// Deepest element nesting read; a CAP alert with a signature needs fewer than 10.
const MAX_DEPTH: usize = 64;

/// `<msgType>`: the nature of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MsgType {
    /// Initial information requiring attention.
    Alert,
    /// Updates and supersedes the earlier message(s) in `references`.
    Update,
    /// Cancels the earlier message(s) in `references`.
    Cancel,
    /// Acknowledges receipt of the message(s) in `references`.
    Ack,
    /// Rejects the message(s) in `references`.
    Error,
}

impl MsgType {
    const ALL: [(&'static str, Self); 5] = [
        ("Alert", Self::Alert),
        ("Update", Self::Update),
        ("Cancel", Self::Cancel),
        ("Ack", Self::Ack),
        ("Error", Self::Error),
    ];

    /// The value as written in CAP.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }
}

/// `<status>`: the appropriate handling of the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    /// Actionable by all targeted recipients.
    Actual,
    /// Actionable only by designated exercise participants.
    Exercise,
    /// For messages that support alert network internal functions.
    System,
    /// Technical testing only; all recipients disregard.
    Test,
    /// A preliminary template or draft, not actionable.
    Draft,
}

impl Status {
    const ALL: [(&'static str, Self); 5] = [
        ("Actual", Self::Actual),
        ("Exercise", Self::Exercise),
        ("System", Self::System),
        ("Test", Self::Test),
        ("Draft", Self::Draft),
    ];

    /// The value as written in CAP.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }
}

/// `<scope>`: the intended distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// For general dissemination to unrestricted audiences.
    Public,
    /// For users with a known operational requirement (see `<restriction>`).
    Restricted,
    /// For the addresses in `<addresses>`.
    Private,
}

impl Scope {
    const ALL: [(&'static str, Self); 3] = [
        ("Public", Self::Public),
        ("Restricted", Self::Restricted),
        ("Private", Self::Private),
    ];

    /// The value as written in CAP.
    pub fn as_str(self) -> &'static str {
        name_of(&Self::ALL, self)
    }
}

/// One earlier message named in `<references>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// Its `sender`.
    pub sender: String,
    /// Its `identifier`.
    pub identifier: String,
    /// Its `sent` time.
    pub sent: DateTime<FixedOffset>,
}

/// `<area>`: where the information applies.
#[derive(Debug, Clone, PartialEq)]
pub struct Area {
    /// `<areaDesc>`.
    pub description: String,
    /// `<polygon>`s, each one closed exterior ring of `(longitude, latitude)` coordinates.
    pub polygons: Vec<Polygon<f64>>,
    /// `<circle>`s: centre as `(longitude, latitude)` and radius in meters.
    pub circles: Vec<(Point<f64>, f64)>,
}

/// `<info>`: the event, in one language.
#[derive(Debug, Clone, PartialEq)]
pub struct Info {
    /// `<language>` (RFC 3066 tag), `"en-US"` when absent.
    pub language: String,
    /// `<category>` values (at least one): Geo, Met, Safety, Security, Rescue, Fire, Health,
    /// Env, Transport, Infra, CBRNE, Other.
    pub categories: Vec<String>,
    /// `<event>`: the type of event, in words.
    pub event: String,
    /// `<urgency>`: Immediate, Expected, Future, Past or Unknown.
    pub urgency: String,
    /// `<severity>`: Extreme, Severe, Moderate, Minor or Unknown.
    pub severity: String,
    /// `<certainty>`: Observed, Likely, Possible, Unlikely or Unknown.
    pub certainty: String,
    /// `<eventCode>`s as `(valueName, value)`.
    pub event_codes: Vec<(String, String)>,
    /// `<parameter>`s as `(valueName, value)`.
    pub parameters: Vec<(String, String)>,
    /// `<headline>`, if present and not empty.
    pub headline: Option<String>,
    /// `<description>`, if present and not empty.
    pub description: Option<String>,
    /// `<onset>`.
    pub onset: Option<DateTime<FixedOffset>>,
    /// `<expires>`.
    pub expires: Option<DateTime<FixedOffset>>,
    /// `<area>`s.
    pub areas: Vec<Area>,
}

/// A valid CAP 1.2 `<alert>`.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// `<identifier>`, unique for this sender.
    pub identifier: String,
    /// `<sender>`, globally unique.
    pub sender: String,
    /// `<sent>`.
    pub sent: DateTime<FixedOffset>,
    /// `<status>`.
    pub status: Status,
    /// `<msgType>`.
    pub msg_type: MsgType,
    /// `<scope>`.
    pub scope: Scope,
    /// `<references>`: the earlier messages this one updates, cancels, acknowledges or rejects.
    pub references: Vec<Reference>,
    /// `<info>` blocks.
    pub infos: Vec<Info>,
}

/// Why a CAP document was refused; the text is the dead-letter reason and names the element.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CapError {
    /// Larger than [`MAX_CAP_BYTES`].
    #[error("CAP document of {size} bytes is larger than the {limit} bytes accepted")]
    TooLarge {
        /// Size received.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// Not UTF-8, or declared in an encoding other than UTF-8 and ISO-8859-1.
    #[error("CAP document encoding: {0}")]
    Encoding(String),
    /// Not well-formed XML.
    #[error("CAP document is not well-formed XML: {0}")]
    NotXml(String),
    /// A `<!DOCTYPE>`: refused, since a DTD can define external or exponentially expanding
    /// entities.
    #[error(
        "CAP document refused: it has a <!DOCTYPE>; DTDs are not accepted (they can define \
         external or exponentially expanding entities)"
    )]
    Doctype,
    /// An entity reference other than the five predefined ones or a character reference.
    #[error(
        "CAP document refused: entity reference &{0}; is not allowed (only &lt; &gt; &amp; \
         &apos; &quot; and numeric character references)"
    )]
    Entity(String),
    /// The root element is not a CAP `<alert>`.
    #[error(
        "not a CAP alert: the root element is <{element}> in namespace {namespace:?}, expected \
         <alert> in namespace \"urn:oasis:names:tc:emergency:cap:1.2\""
    )]
    NotCap {
        /// Local name of the root element.
        element: String,
        /// Its namespace (empty when none).
        namespace: String,
    },
    /// A CAP alert of another version.
    #[error(
        "CAP {version} document (namespace {namespace:?}): only CAP 1.2 \
         (urn:oasis:names:tc:emergency:cap:1.2) is accepted"
    )]
    UnsupportedVersion {
        /// The version, e.g. `"1.1"`.
        version: String,
        /// The namespace found.
        namespace: String,
    },
    /// A required element is absent.
    #[error("{parent}: required element <{element}> is missing")]
    Missing {
        /// Path of the parent, e.g. `alert/info[1]`.
        parent: String,
        /// The element that is missing.
        element: &'static str,
    },
    /// An element that CAP 1.2 does not allow where it is.
    #[error("{parent}: element <{element}> {reason}")]
    Unexpected {
        /// Path of the parent.
        parent: String,
        /// The element found (`{namespace}name` when not in the CAP namespace).
        element: String,
        /// Why it is not allowed.
        reason: &'static str,
    },
    /// An element whose content is wrong.
    #[error("{element}: {reason}")]
    Invalid {
        /// Path of the element, e.g. `alert/info[1]/area[2]/polygon[1]`.
        element: String,
        /// What is wrong.
        reason: String,
    },
    /// An `Update` or `Cancel` without the messages it updates or cancels.
    #[error(
        "alert/references: a msgType {} must name the earlier message(s) in <references> as \
         \"sender,identifier,sent\"",
        msg_type.as_str()
    )]
    ReferencesRequired {
        /// The message type.
        msg_type: MsgType,
    },
}

/// Parses and validates one CAP 1.2 `<alert>` document.
pub fn parse(payload: &[u8]) -> Result<Alert, CapError> {
    if payload.len() > MAX_CAP_BYTES {
        return Err(CapError::TooLarge {
            size: payload.len(),
            limit: MAX_CAP_BYTES,
        });
    }
    let text = decode(payload)?;
    check_chars(&text)?;
    let root = read_tree(&text)?;
    alert(&root)
}

// ---------------------------------------------------------------------------------------------
// Bytes to text

/// Labels of ISO-8859-1 (IANA), lower case.
const LATIN1_LABELS: [&str; 10] = [
    "iso-8859-1",
    "iso_8859-1",
    "iso8859-1",
    "iso_8859-1:1987",
    "latin1",
    "l1",
    "iso-ir-100",
    "cp819",
    "ibm819",
    "csisolatin1",
];

fn decode(payload: &[u8]) -> Result<Cow<'_, str>, CapError> {
    let (bom, bytes) = match payload.strip_prefix(b"\xEF\xBB\xBF") {
        Some(rest) => (true, rest),
        None => (false, payload),
    };
    if bytes.starts_with(&[0xFE, 0xFF])
        || bytes.starts_with(&[0xFF, 0xFE])
        || bytes.starts_with(&[0x00, b'<'])
        || bytes.starts_with(&[b'<', 0x00])
    {
        return Err(CapError::Encoding(
            "UTF-16 is not accepted: send UTF-8".into(),
        ));
    }
    let declared = xml_declaration(bytes)?.and_then(|d| d.encoding);
    match declared.as_deref() {
        None | Some("utf-8" | "utf8") => utf8(bytes),
        Some(other) if bom => Err(CapError::Encoding(format!(
            "the byte-order mark says UTF-8 but the XML declaration says {other:?}"
        ))),
        Some("us-ascii" | "ascii") => match bytes.iter().position(|b| !b.is_ascii()) {
            Some(at) => Err(CapError::Encoding(format!(
                "declared US-ASCII but byte {at} is 0x{:02X}",
                bytes[at]
            ))),
            None => utf8(bytes),
        },
        Some(label) if LATIN1_LABELS.contains(&label) => {
            Ok(Cow::Owned(bytes.iter().copied().map(char::from).collect()))
        }
        Some(other) => Err(CapError::Encoding(format!(
            "declared encoding {other:?} is not accepted: send UTF-8 (ISO-8859-1 is also read)"
        ))),
    }
}

/// The document as UTF-8 text that parses to the same alert: UTF-8 as it is (without a
/// byte-order mark), ISO-8859-1 transcoded, its XML declaration then saying UTF-8. What the event
/// log keeps, so that `dispecer rebuild` reads the alert again as it was received.
pub fn to_utf8(payload: &[u8]) -> Result<String, CapError> {
    match decode(payload)? {
        Cow::Borrowed(text) => Ok(text.to_owned()),
        Cow::Owned(text) => {
            // Transcoded: the document had a declaration naming its encoding (`decode`), which is
            // ASCII, so it ends at the same offset in the text as in the bytes.
            let decl = xml_declaration(text.as_bytes())?.ok_or_else(|| {
                CapError::Encoding("the XML declaration's encoding cannot be rewritten".into())
            })?;
            let standalone = match decl.standalone {
                Some(yes) => format!(" standalone=\"{}\"", if yes { "yes" } else { "no" }),
                None => String::new(),
            };
            Ok(format!(
                "<?xml version=\"{}\" encoding=\"UTF-8\"{standalone}?>{}",
                decl.version,
                &text[decl.end..]
            ))
        }
    }
}

/// An XML declaration, as XML 1.0 (§2.8) writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct XmlDecl {
    /// `1.` and digits.
    version: String,
    /// The encoding's label in lower case.
    encoding: Option<String>,
    standalone: Option<bool>,
    /// Offset just after `?>`.
    end: usize,
}

/// The XML declaration `bytes` start with, if they start with one (`<?xml` and a space);
/// refused unless well-formed: `version`, then optionally `encoding` and `standalone`, in that
/// order, nothing else. (quick-xml reads a declaration leniently: an attribute named
/// `vers&lencodingt;ion` went unnoticed, and the label rewritten for the event log was the wrong
/// one.)
fn xml_declaration(bytes: &[u8]) -> Result<Option<XmlDecl>, CapError> {
    const OPEN: &[u8] = b"<?xml";
    let Some(rest) = bytes.strip_prefix(OPEN) else {
        return Ok(None);
    };
    if !rest.first().is_some_and(|b| is_xml_space(*b)) {
        // `<?xml-stylesheet …?>` and the like are processing instructions, not a declaration.
        return Ok(None);
    }
    let bad = |what: &str| CapError::NotXml(format!("line 1: malformed XML declaration: {what}"));
    let mut at = OPEN.len();
    let mut pairs: Vec<(&[u8], &[u8])> = Vec::with_capacity(3);
    loop {
        let spaced = skip_spaces(bytes, &mut at);
        if bytes[at..].starts_with(b"?>") {
            at += 2;
            break;
        }
        if !spaced {
            return Err(bad("attributes must be separated by white space"));
        }
        let name_start = at;
        while at < bytes.len() && bytes[at].is_ascii_alphabetic() {
            at += 1;
        }
        let name = &bytes[name_start..at];
        skip_spaces(bytes, &mut at);
        if bytes.get(at) != Some(&b'=') {
            return Err(bad(
                "expected version, encoding or standalone followed by =",
            ));
        }
        at += 1;
        skip_spaces(bytes, &mut at);
        let quote = match bytes.get(at) {
            Some(q @ (b'"' | b'\'')) => *q,
            _ => return Err(bad("an attribute's value must be quoted")),
        };
        at += 1;
        let value_start = at;
        let Some(len) = bytes[at..].iter().take(64).position(|b| *b == quote) else {
            return Err(bad("an attribute's value is not closed"));
        };
        at += len + 1;
        pairs.push((name, &bytes[value_start..value_start + len]));
        if pairs.len() > 3 {
            return Err(bad("more than version, encoding and standalone"));
        }
    }
    let mut pairs = pairs.into_iter().peekable();
    let version = match pairs.next() {
        Some((b"version", v))
            if v.len() > 2 && v.starts_with(b"1.") && v[2..].iter().all(u8::is_ascii_digit) =>
        {
            String::from_utf8_lossy(v).into_owned()
        }
        _ => return Err(bad("it must start with version=\"1.0\"")),
    };
    let encoding = match pairs.next_if(|(n, _)| *n == b"encoding") {
        Some((_, v))
            if v.first().is_some_and(u8::is_ascii_alphabetic)
                && v.iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-')) =>
        {
            Some(String::from_utf8_lossy(v).to_ascii_lowercase())
        }
        Some(_) => return Err(bad("the encoding's name is not a name")),
        None => None,
    };
    let standalone = match pairs.next_if(|(n, _)| *n == b"standalone") {
        Some((_, b"yes")) => Some(true),
        Some((_, b"no")) => Some(false),
        Some(_) => return Err(bad("standalone must be \"yes\" or \"no\"")),
        None => None,
    };
    if pairs.next().is_some() {
        return Err(bad("only version, encoding and standalone, in that order"));
    }
    Ok(Some(XmlDecl {
        version,
        encoding,
        standalone,
        end: at,
    }))
}

fn is_xml_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

/// Moves `at` past white space; whether there was any.
fn skip_spaces(bytes: &[u8], at: &mut usize) -> bool {
    let start = *at;
    while bytes.get(*at).is_some_and(|b| is_xml_space(*b)) {
        *at += 1;
    }
    *at > start
}

fn utf8(bytes: &[u8]) -> Result<Cow<'_, str>, CapError> {
    std::str::from_utf8(bytes).map(Cow::Borrowed).map_err(|e| {
        CapError::Encoding(format!(
            "not valid UTF-8 at byte {} (declare encoding=\"ISO-8859-1\" if it is Latin-1)",
            e.valid_up_to()
        ))
    })
}

/// Refuses characters that XML 1.0 does not allow anywhere (control characters, U+FFFE, U+FFFF).
fn check_chars(text: &str) -> Result<(), CapError> {
    for (at, c) in text.char_indices() {
        if !is_xml_char(c) {
            return Err(CapError::NotXml(format!(
                "line {}: character U+{:04X} is not allowed in XML",
                line_of(text, at),
                u32::from(c)
            )));
        }
    }
    Ok(())
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

fn line_of(text: &str, at: usize) -> usize {
    let at = at.min(text.len());
    text.as_bytes()[..at]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

// ---------------------------------------------------------------------------------------------
// Text to a small tree of elements

#[derive(Debug, Clone, PartialEq)]
enum Ns {
    Cap,
    Dsig,
    Other(String),
}

/// One element: its children, and its text (character data, CDATA and references, in order).
/// The content of elements outside the CAP namespace is not kept.
#[derive(Debug)]
struct Node {
    ns: Ns,
    local: String,
    text: String,
    children: Vec<Node>,
}

impl Node {
    /// The name as shown in errors.
    fn display_name(&self) -> String {
        match &self.ns {
            Ns::Cap => self.local.clone(),
            Ns::Dsig => format!("{{{XMLDSIG_NAMESPACE}}}{}", self.local),
            Ns::Other(ns) => format!("{{{ns}}}{}", self.local),
        }
    }

    /// The key this element has in a content model.
    fn key(&self) -> &str {
        match self.ns {
            Ns::Cap => &self.local,
            Ns::Dsig => DSIG_KEY,
            Ns::Other(_) => OTHER_KEY,
        }
    }

    fn child(&self, name: &str) -> Option<&Node> {
        self.children
            .iter()
            .find(|c| c.ns == Ns::Cap && c.local == name)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        self.children
            .iter()
            .filter(move |c| c.ns == Ns::Cap && c.local == name)
    }
}

fn not_xml(text: &str, at: u64, what: impl std::fmt::Display) -> CapError {
    let at = usize::try_from(at).unwrap_or(usize::MAX);
    CapError::NotXml(format!("line {}: {what}", line_of(text, at)))
}

fn read_tree(text: &str) -> Result<Node, CapError> {
    let mut reader = NsReader::from_str(text);
    reader.config_mut().check_comments = true;
    reader.config_mut().check_end_names = true;
    let mut stack: Vec<Node> = Vec::new();
    let mut root: Option<Node> = None;
    // Depth inside an element whose content is not kept (a signature or a foreign element).
    let mut skipped = 0usize;
    let mut first = true;
    loop {
        let at = reader.buffer_position();
        let (ns, event) = match reader.read_resolved_event() {
            Ok((ns, event)) => (resolved(&ns), event),
            Err(e) => return Err(not_xml(text, reader.error_position(), e)),
        };
        let was_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(_) if was_first => {}
            Event::Decl(_) => {
                return Err(not_xml(
                    text,
                    at,
                    "an XML declaration is only allowed at the very start",
                ))
            }
            Event::DocType(_) => return Err(CapError::Doctype),
            Event::PI(_) | Event::Comment(_) => {}
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_start = matches!(event, Event::Start(_));
                let ns = ns.map_err(|what| not_xml(text, at, what))?;
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_some() && stack.is_empty() {
                    return Err(not_xml(
                        text,
                        at,
                        format!("element <{local}> after the end of the root element"),
                    ));
                }
                if stack.len() + skipped >= MAX_DEPTH {
                    return Err(CapError::Invalid {
                        element: "alert".into(),
                        reason: format!(
                            "line {}: elements nested deeper than {MAX_DEPTH} are refused",
                            line_of(text, usize::try_from(at).unwrap_or(usize::MAX))
                        ),
                    });
                }
                let ns = match ns.as_str() {
                    NAMESPACE => Ns::Cap,
                    XMLDSIG_NAMESPACE => Ns::Dsig,
                    _ => Ns::Other(ns),
                };
                let path = stack
                    .iter()
                    .map(|n| n.local.as_str())
                    .chain([local.as_str()])
                    .collect::<Vec<_>>()
                    .join("/");
                let cap = ns == Ns::Cap && skipped == 0;
                check_attributes(text, at, e, reader.resolver(), cap, &path)?;
                if stack.is_empty() {
                    check_root(&ns, &local)?;
                }
                if skipped > 0 {
                    if is_start {
                        skipped += 1;
                    }
                    continue;
                }
                let node = Node {
                    ns,
                    local,
                    text: String::new(),
                    children: Vec::new(),
                };
                if node.ns != Ns::Cap {
                    // Kept by name only, for the content model of its parent.
                    if is_start {
                        skipped = 1;
                    }
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(node);
                    }
                } else if is_start {
                    stack.push(node);
                } else if let Some(parent) = stack.last_mut() {
                    parent.children.push(node);
                } else {
                    root = Some(node);
                }
            }
            Event::End(_) => {
                if skipped > 0 {
                    skipped -= 1;
                    continue;
                }
                let Some(node) = stack.pop() else {
                    return Err(not_xml(text, at, "end tag without a start tag"));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content().map_err(|e| not_xml(text, at, e))?;
                add_text(text, at, &mut stack, skipped, &content, "text")?;
            }
            Event::CData(t) => {
                let content = t.xml10_content().map_err(|e| not_xml(text, at, e))?;
                add_text(text, at, &mut stack, skipped, &content, "CDATA")?;
            }
            Event::GeneralRef(r) => {
                let name = String::from_utf8_lossy(&r).into_owned();
                let c = if r.is_char_ref() {
                    match r.resolve_char_ref() {
                        Ok(Some(c)) if is_xml_char(c) => c,
                        _ => {
                            return Err(not_xml(
                                text,
                                at,
                                format!("&{name}; is not a valid character reference"),
                            ))
                        }
                    }
                } else {
                    predefined_entity(&name).ok_or(CapError::Entity(name))?
                };
                let mut buf = [0u8; 4];
                add_text(
                    text,
                    at,
                    &mut stack,
                    skipped,
                    c.encode_utf8(&mut buf),
                    "reference",
                )?;
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(not_xml(
                        text,
                        at,
                        format!("the document ends inside <{}>", open.local),
                    ));
                }
                return root.ok_or_else(|| not_xml(text, at, "no root element"));
            }
        }
    }
}

/// The namespace of an element, or what is wrong with its prefix.
fn resolved(ns: &ResolveResult<'_>) -> Result<String, String> {
    match ns {
        ResolveResult::Bound(ns) => Ok(String::from_utf8_lossy(ns.as_ref()).into_owned()),
        ResolveResult::Unbound => Ok(String::new()),
        ResolveResult::Unknown(prefix) => Err(format!(
            "namespace prefix {:?} is not declared",
            String::from_utf8_lossy(prefix)
        )),
    }
}

fn add_text(
    text: &str,
    at: u64,
    stack: &mut [Node],
    skipped: usize,
    content: &str,
    what: &str,
) -> Result<(), CapError> {
    match stack.last_mut() {
        Some(_) if skipped > 0 => Ok(()),
        Some(node) => {
            node.text.push_str(content);
            Ok(())
        }
        None if what == "text" && xml_trim(content).is_empty() => Ok(()),
        None => Err(not_xml(
            text,
            at,
            format!("{what} outside the root element"),
        )),
    }
}

fn predefined_entity(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "apos" => Some('\''),
        "quot" => Some('"'),
        _ => None,
    }
}

fn check_root(ns: &Ns, local: &str) -> Result<(), CapError> {
    let namespace = match ns {
        Ns::Cap if local == "alert" => return Ok(()),
        Ns::Cap => NAMESPACE,
        Ns::Dsig => XMLDSIG_NAMESPACE,
        Ns::Other(ns) => ns,
    };
    if local == "alert" {
        let version = if namespace == CAP_1_0_NAMESPACE {
            Some("1.0")
        } else {
            namespace.strip_prefix(CAP_NAMESPACE_PREFIX)
        };
        if let Some(version) = version {
            return Err(CapError::UnsupportedVersion {
                version: version.to_owned(),
                namespace: namespace.to_owned(),
            });
        }
    }
    Err(CapError::NotCap {
        element: local.to_owned(),
        namespace: namespace.to_owned(),
    })
}

/// Attributes must be well-formed everywhere; CAP elements have none besides namespace
/// declarations and `xsi:schemaLocation` (which is never followed).
fn check_attributes(
    text: &str,
    at: u64,
    e: &BytesStart<'_>,
    resolver: &NamespaceResolver,
    cap: bool,
    path: &str,
) -> Result<(), CapError> {
    for attribute in e.attributes() {
        let attribute = attribute.map_err(|err| not_xml(text, at, err))?;
        check_attribute_value(text, at, &attribute.value)?;
        if !cap || attribute.key.as_namespace_binding().is_some() {
            continue;
        }
        let (ns, name) = resolver.resolve_attribute(attribute.key);
        let xsi = matches!(ns, ResolveResult::Bound(ns) if ns.as_ref() == XSI_NAMESPACE.as_bytes());
        if !(xsi
            && matches!(
                name.as_ref(),
                b"schemaLocation" | b"noNamespaceSchemaLocation"
            ))
        {
            return Err(CapError::Invalid {
                element: path.to_owned(),
                reason: format!(
                    "attribute {:?} is not allowed: CAP 1.2 elements have no attributes",
                    String::from_utf8_lossy(attribute.key.as_ref())
                ),
            });
        }
    }
    Ok(())
}

/// No `<` and no entity references but the predefined ones and character references.
fn check_attribute_value(text: &str, at: u64, value: &[u8]) -> Result<(), CapError> {
    if value.contains(&b'<') {
        return Err(not_xml(text, at, "'<' in an attribute value"));
    }
    let mut rest = value;
    while let Some(amp) = rest.iter().position(|&b| b == b'&') {
        rest = &rest[amp + 1..];
        let Some(end) = rest.iter().position(|&b| b == b';') else {
            return Err(not_xml(text, at, "'&' without ';' in an attribute value"));
        };
        let name = String::from_utf8_lossy(&rest[..end]).into_owned();
        let valid = match name.strip_prefix('#') {
            Some(number) => char_ref(number).is_some_and(is_xml_char),
            None => predefined_entity(&name).is_some(),
        };
        if !valid {
            return Err(if name.starts_with('#') {
                not_xml(
                    text,
                    at,
                    format!("&{name}; is not a valid character reference"),
                )
            } else {
                CapError::Entity(name)
            });
        }
        rest = &rest[end + 1..];
    }
    Ok(())
}

fn char_ref(number: &str) -> Option<char> {
    let code = match number.strip_prefix('x') {
        Some(hex) if !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            u32::from_str_radix(hex, 16).ok()?
        }
        None if !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()) => {
            number.parse().ok()?
        }
        _ => return None,
    };
    char::from_u32(code)
}

// ---------------------------------------------------------------------------------------------
// Content models of the CAP 1.2 schema (each a sequence of distinct names)

const UNBOUNDED: u32 = u32::MAX;
const DSIG_KEY: &str = "#xmldsig";
const OTHER_KEY: &str = "#other";

/// `(name, minOccurs, maxOccurs)` in schema order.
type Model = [(&'static str, u32, u32)];

const ALERT_MODEL: &Model = &[
    ("identifier", 1, 1),
    ("sender", 1, 1),
    ("sent", 1, 1),
    ("status", 1, 1),
    ("msgType", 1, 1),
    ("source", 0, 1),
    ("scope", 1, 1),
    ("restriction", 0, 1),
    ("addresses", 0, 1),
    ("code", 0, UNBOUNDED),
    ("note", 0, 1),
    ("references", 0, 1),
    ("incidents", 0, 1),
    ("info", 0, UNBOUNDED),
    (DSIG_KEY, 0, UNBOUNDED),
];

const INFO_MODEL: &Model = &[
    ("language", 0, 1),
    ("category", 1, UNBOUNDED),
    ("event", 1, 1),
    ("responseType", 0, UNBOUNDED),
    ("urgency", 1, 1),
    ("severity", 1, 1),
    ("certainty", 1, 1),
    ("audience", 0, 1),
    ("eventCode", 0, UNBOUNDED),
    ("effective", 0, 1),
    ("onset", 0, 1),
    ("expires", 0, 1),
    ("senderName", 0, 1),
    ("headline", 0, 1),
    ("description", 0, 1),
    ("instruction", 0, 1),
    ("web", 0, 1),
    ("contact", 0, 1),
    ("parameter", 0, UNBOUNDED),
    ("resource", 0, UNBOUNDED),
    ("area", 0, UNBOUNDED),
];

const RESOURCE_MODEL: &Model = &[
    ("resourceDesc", 1, 1),
    ("mimeType", 1, 1),
    ("size", 0, 1),
    ("uri", 0, 1),
    ("derefUri", 0, 1),
    ("digest", 0, 1),
];

const AREA_MODEL: &Model = &[
    ("areaDesc", 1, 1),
    ("polygon", 0, UNBOUNDED),
    ("circle", 0, UNBOUNDED),
    ("geocode", 0, UNBOUNDED),
    ("altitude", 0, 1),
    ("ceiling", 0, 1),
];

/// `eventCode`, `parameter`, `geocode`.
const PAIR_MODEL: &Model = &[("valueName", 1, 1), ("value", 1, 1)];

/// Elements with element content; every other CAP element has text only.
const COMPLEX: [&str; 7] = [
    "alert",
    "info",
    "eventCode",
    "parameter",
    "resource",
    "area",
    "geocode",
];

/// Checks the children of `node` against `model`, as an XSD `<sequence>` would: order,
/// minOccurs and maxOccurs; also that it has no text of its own and that its text-only children
/// have no children.
fn check_model(path: &str, node: &Node, model: &Model) -> Result<(), CapError> {
    if !xml_trim(&node.text).is_empty() {
        return Err(CapError::Invalid {
            element: path.to_owned(),
            reason: format!("text is not allowed directly inside <{}>", node.local),
        });
    }
    let unexpected = |child: &Node, reason| CapError::Unexpected {
        parent: path.to_owned(),
        element: child.display_name(),
        reason,
    };
    let mut i = 0;
    let mut count = 0;
    for (k, child) in node.children.iter().enumerate() {
        let key = child.key();
        loop {
            let Some(&(name, min, max)) = model.get(i) else {
                return Err(unexpected(child, reason_for(model, key)));
            };
            if name == key {
                count += 1;
                if count > max {
                    return Err(unexpected(child, "may appear only once"));
                }
                break;
            }
            if !model[i..].iter().any(|&(n, _, _)| n == key) {
                return Err(unexpected(child, reason_for(model, key)));
            }
            if count < min {
                let later = node.children[k + 1..].iter().any(|c| c.key() == name);
                return Err(if later {
                    unexpected(
                        child,
                        "is out of order (CAP 1.2 fixes the order of elements)",
                    )
                } else {
                    CapError::Missing {
                        parent: path.to_owned(),
                        element: name,
                    }
                });
            }
            i += 1;
            count = 0;
        }
        if child.ns == Ns::Cap && !COMPLEX.contains(&child.local.as_str()) {
            if let Some(grandchild) = child.children.first() {
                return Err(CapError::Invalid {
                    element: format!("{path}/{}", child.local),
                    reason: format!(
                        "must contain only text, found element <{}>",
                        grandchild.display_name()
                    ),
                });
            }
        }
    }
    for (j, &(name, min, _)) in model.iter().enumerate().skip(i) {
        let seen = if j == i { count } else { 0 };
        if seen < min {
            return Err(CapError::Missing {
                parent: path.to_owned(),
                element: name,
            });
        }
    }
    Ok(())
}

fn reason_for(model: &Model, key: &str) -> &'static str {
    if key == OTHER_KEY || key == DSIG_KEY {
        "is not in the CAP 1.2 namespace and not allowed here"
    } else if model.iter().any(|&(n, _, _)| n == key) {
        "is out of order (CAP 1.2 fixes the order of elements) or repeated"
    } else {
        "is not a CAP 1.2 element here"
    }
}

// ---------------------------------------------------------------------------------------------
// The tree to an Alert

fn alert(root: &Node) -> Result<Alert, CapError> {
    check_model("alert", root, ALERT_MODEL)?;
    let identifier = token(root, "alert", "identifier")?;
    let sender = token(root, "alert", "sender")?;
    let sent = date_time("alert/sent", required_text(root, "sent"))?;
    let status = enumerated("alert/status", required_text(root, "status"), &Status::ALL)?;
    let msg_type = enumerated(
        "alert/msgType",
        required_text(root, "msgType"),
        &MsgType::ALL,
    )?;
    let scope = enumerated("alert/scope", required_text(root, "scope"), &Scope::ALL)?;
    if scope == Scope::Private && root.child("addresses").is_none() {
        return Err(CapError::Invalid {
            element: "alert/scope".into(),
            reason: "a Private alert requires <addresses>".into(),
        });
    }
    let references = match root.child("references") {
        Some(node) => references(&node.text)?,
        None => Vec::new(),
    };
    if matches!(msg_type, MsgType::Update | MsgType::Cancel) && references.is_empty() {
        return Err(CapError::ReferencesRequired { msg_type });
    }
    let infos = root
        .all("info")
        .enumerate()
        .map(|(i, node)| info(&format!("alert/info[{}]", i + 1), node))
        .collect::<Result<_, _>>()?;
    Ok(Alert {
        identifier,
        sender,
        sent,
        status,
        msg_type,
        scope,
        references,
        infos,
    })
}

const CATEGORIES: [&str; 12] = [
    "Geo",
    "Met",
    "Safety",
    "Security",
    "Rescue",
    "Fire",
    "Health",
    "Env",
    "Transport",
    "Infra",
    "CBRNE",
    "Other",
];
const RESPONSE_TYPES: [&str; 9] = [
    "Shelter", "Evacuate", "Prepare", "Execute", "Avoid", "Monitor", "Assess", "AllClear", "None",
];
const URGENCIES: [&str; 5] = ["Immediate", "Expected", "Future", "Past", "Unknown"];
const SEVERITIES: [&str; 5] = ["Extreme", "Severe", "Moderate", "Minor", "Unknown"];
const CERTAINTIES: [&str; 5] = ["Observed", "Likely", "Possible", "Unlikely", "Unknown"];

fn info(path: &str, node: &Node) -> Result<Info, CapError> {
    check_model(path, node, INFO_MODEL)?;
    let language = match node.child("language").map(|n| xml_trim(&n.text)) {
        None | Some("") => "en-US".to_owned(),
        Some(tag) if is_language(tag) => tag.to_owned(),
        Some(tag) => {
            return Err(CapError::Invalid {
                element: format!("{path}/language"),
                reason: format!("{tag:?} is not a language tag such as \"en-US\""),
            })
        }
    };
    let categories = node
        .all("category")
        .map(|n| word(&format!("{path}/category"), &n.text, &CATEGORIES))
        .collect::<Result<_, _>>()?;
    for n in node.all("responseType") {
        word(&format!("{path}/responseType"), &n.text, &RESPONSE_TYPES)?;
    }
    let urgency = word(
        &format!("{path}/urgency"),
        required_text(node, "urgency"),
        &URGENCIES,
    )?;
    let severity = word(
        &format!("{path}/severity"),
        required_text(node, "severity"),
        &SEVERITIES,
    )?;
    let certainty = word(
        &format!("{path}/certainty"),
        required_text(node, "certainty"),
        &CERTAINTIES,
    )?;
    let event_codes = pairs(path, node, "eventCode")?;
    let parameters = pairs(path, node, "parameter")?;
    let time = |name: &str| {
        node.child(name)
            .map(|n| date_time(&format!("{path}/{name}"), &n.text))
            .transpose()
    };
    time("effective")?;
    let onset = time("onset")?;
    let expires = time("expires")?;
    for (i, resource) in node.all("resource").enumerate() {
        let resource_path = format!("{path}/resource[{}]", i + 1);
        check_model(&resource_path, resource, RESOURCE_MODEL)?;
        if let Some(size) = resource.child("size") {
            if !is_integer(xml_trim(&size.text)) {
                return Err(CapError::Invalid {
                    element: format!("{resource_path}/size"),
                    reason: format!("{:?} is not an integer", xml_trim(&size.text)),
                });
            }
        }
    }
    let areas = node
        .all("area")
        .enumerate()
        .map(|(i, n)| area(&format!("{path}/area[{}]", i + 1), n))
        .collect::<Result<_, _>>()?;
    Ok(Info {
        language,
        categories,
        event: xml_trim(required_text(node, "event")).to_owned(),
        urgency,
        severity,
        certainty,
        event_codes,
        parameters,
        headline: optional_text(node, "headline"),
        description: optional_text(node, "description"),
        onset,
        expires,
        areas,
    })
}

fn pairs(path: &str, node: &Node, name: &str) -> Result<Vec<(String, String)>, CapError> {
    node.all(name)
        .enumerate()
        .map(|(i, pair)| {
            check_model(&format!("{path}/{name}[{}]", i + 1), pair, PAIR_MODEL)?;
            Ok((
                xml_trim(required_text(pair, "valueName")).to_owned(),
                xml_trim(required_text(pair, "value")).to_owned(),
            ))
        })
        .collect()
}

fn area(path: &str, node: &Node) -> Result<Area, CapError> {
    check_model(path, node, AREA_MODEL)?;
    let polygons = node
        .all("polygon")
        .enumerate()
        .map(|(i, n)| polygon(&format!("{path}/polygon[{}]", i + 1), &n.text))
        .collect::<Result<_, _>>()?;
    let circles = node
        .all("circle")
        .enumerate()
        .map(|(i, n)| circle(&format!("{path}/circle[{}]", i + 1), &n.text))
        .collect::<Result<_, _>>()?;
    pairs(path, node, "geocode")?;
    for name in ["altitude", "ceiling"] {
        if let Some(n) = node.child(name) {
            if decimal(xml_trim(&n.text)).is_none() {
                return Err(CapError::Invalid {
                    element: format!("{path}/{name}"),
                    reason: format!("{:?} is not a decimal number", xml_trim(&n.text)),
                });
            }
        }
    }
    Ok(Area {
        description: xml_trim(required_text(node, "areaDesc")).to_owned(),
        polygons,
        circles,
    })
}

/// `"lat,lon lat,lon ..."`: at least 4 pairs, closed; returned as `(lon, lat)`.
fn polygon(path: &str, text: &str) -> Result<Polygon<f64>, CapError> {
    let invalid = |reason: String| CapError::Invalid {
        element: path.to_owned(),
        reason,
    };
    let coords = xml_words(text)
        .enumerate()
        .map(|(i, pair)| lat_lon(path, i + 1, pair))
        .collect::<Result<Vec<_>, _>>()?;
    if coords.len() < 4 {
        return Err(invalid(format!(
            "a polygon needs at least 4 \"lat,lon\" pairs, the last equal to the first; found {}",
            coords.len()
        )));
    }
    if coords.first() != coords.last() {
        return Err(invalid(
            "the polygon is not closed: its last \"lat,lon\" pair must equal its first".into(),
        ));
    }
    Ok(Polygon::new(LineString::new(coords), Vec::new()))
}

/// `"lat,lon radius_km"`: returned as `(Point(lon, lat), radius in meters)`.
fn circle(path: &str, text: &str) -> Result<(Point<f64>, f64), CapError> {
    let mut words = xml_words(text);
    let (Some(centre), Some(radius), None) = (words.next(), words.next(), words.next()) else {
        return Err(CapError::Invalid {
            element: path.to_owned(),
            reason: format!("{:?} is not \"lat,lon radius_km\"", xml_trim(text)),
        });
    };
    let centre = lat_lon(path, 1, centre)?;
    match decimal(radius) {
        Some(km) if km >= 0.0 && (km * 1000.0).is_finite() => {
            Ok((Point::from(centre), km * 1000.0))
        }
        _ => Err(CapError::Invalid {
            element: path.to_owned(),
            reason: format!("radius {radius:?} is not a number of kilometres (0 or more)"),
        }),
    }
}

/// One `"lat,lon"` pair (the `n`th of its element), as a `(lon, lat)` coordinate.
fn lat_lon(path: &str, n: usize, pair: &str) -> Result<Coord<f64>, CapError> {
    let invalid = |reason: String| CapError::Invalid {
        element: path.to_owned(),
        reason: format!("point {n} {pair:?}: {reason}"),
    };
    let Some((lat, lon)) = pair.split_once(',') else {
        return Err(invalid("is not \"lat,lon\"".into()));
    };
    let (Some(lat), Some(lon)) = (decimal(lat), decimal(lon)) else {
        return Err(invalid("is not \"lat,lon\" in decimal degrees".into()));
    };
    if !(-90.0..=90.0).contains(&lat) {
        return Err(invalid(format!(
            "latitude {lat} is not within -90..90 (CAP writes latitude first)"
        )));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(invalid(format!("longitude {lon} is not within -180..180")));
    }
    Ok(Coord { x: lon, y: lat })
}

/// Whitespace-separated `sender,identifier,sent` triples.
fn references(text: &str) -> Result<Vec<Reference>, CapError> {
    xml_words(text)
        .enumerate()
        .map(|(i, triple)| {
            let invalid = |reason: String| CapError::Invalid {
                element: "alert/references".into(),
                reason: format!("reference {} {triple:?} {reason}", i + 1),
            };
            let parts: Vec<&str> = triple.split(',').collect();
            let &[sender, identifier, sent] = parts.as_slice() else {
                return Err(invalid("is not \"sender,identifier,sent\"".into()));
            };
            if sender.is_empty() || identifier.is_empty() {
                return Err(invalid("has an empty sender or identifier".into()));
            }
            if let Some(c) = triple
                .chars()
                .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, '<' | '&'))
            {
                return Err(invalid(format!("contains {c:?}")));
            }
            let sent = date_time("alert/references", sent)?;
            Ok(Reference {
                sender: sender.to_owned(),
                identifier: identifier.to_owned(),
                sent,
            })
        })
        .collect()
}

/// `identifier` and `sender`: not empty, no whitespace, commas, `<` or `&` (CAP 1.2, 3.2.1). Any
/// Unicode whitespace counts (a no-break space is a space), and control characters are refused
/// too: these become parts of event ids, shown to operators and written to logs.
fn token(node: &Node, path: &str, name: &'static str) -> Result<String, CapError> {
    let value = xml_trim(required_text(node, name));
    let reason = if value.is_empty() {
        Some("must not be empty".to_owned())
    } else {
        value
            .chars()
            .find(|&c| c.is_whitespace() || c.is_control() || matches!(c, ',' | '<' | '&'))
            .map(|c| {
                format!(
                    "{value:?} must not contain {c:?} \
                     (no spaces, commas, '<' or '&'; no control characters)"
                )
            })
    };
    match reason {
        Some(reason) => Err(CapError::Invalid {
            element: format!("{path}/{name}"),
            reason,
        }),
        None => Ok(value.to_owned()),
    }
}

/// A CAP date-time, exactly `YYYY-MM-DDThh:mm:ss±hh:mm` (the schema's pattern on `xs:dateTime`).
fn date_time(path: &str, raw: &str) -> Result<DateTime<FixedOffset>, CapError> {
    let s = xml_trim(raw);
    let invalid = |hint: &str| CapError::Invalid {
        element: path.to_owned(),
        reason: format!("{s:?} is not a date-time of the form YYYY-MM-DDThh:mm:ss±hh:mm{hint}"),
    };
    let b = s.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd+dd:dd";
    let matches_shape = b.len() == shape.len()
        && b.iter().zip(shape).all(|(&c, &p)| match p {
            b'd' => c.is_ascii_digit(),
            b'+' => c == b'+' || c == b'-',
            _ => c == p,
        });
    if !matches_shape {
        let hint = if s.ends_with('Z') || s.ends_with('z') {
            " (a trailing \"Z\" is not allowed: write +00:00)"
        } else if s.contains('.') {
            " (fractional seconds are not allowed)"
        } else {
            ""
        };
        return Err(invalid(hint));
    }
    let num = |from: usize, to: usize| -> u32 {
        b[from..to]
            .iter()
            .fold(0, |n, &d| n * 10 + u32::from(d - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let (offset_hours, offset_minutes) = (num(20, 22), num(23, 25));
    let date = i32::try_from(year)
        .ok()
        .filter(|&y| y > 0)
        .and_then(|y| NaiveDate::from_ymd_opt(y, month, day))
        .ok_or_else(|| invalid(" (no such date)"))?;
    let local = if (hour, minute, second) == (24, 0, 0) {
        date.checked_add_days(Days::new(1))
            .map(|d| d.and_time(NaiveTime::MIN))
    } else {
        NaiveTime::from_hms_opt(hour, minute, second).map(|t| date.and_time(t))
    }
    .ok_or_else(|| invalid(" (no such time)"))?;
    if offset_minutes > 59 || offset_hours * 60 + offset_minutes > 14 * 60 {
        return Err(invalid(" (the offset must be within ±14:00)"));
    }
    let seconds = i32::try_from((offset_hours * 60 + offset_minutes) * 60).unwrap_or(0);
    let offset = if b[19] == b'-' {
        FixedOffset::west_opt(seconds)
    } else {
        FixedOffset::east_opt(seconds)
    }
    .ok_or_else(|| invalid(" (the offset must be within ±14:00)"))?;
    local
        .and_local_timezone(offset)
        .single()
        .ok_or_else(|| invalid(""))
}

/// An enumerated value; must match exactly, as in the schema.
fn enumerated<T: Copy>(path: &str, raw: &str, all: &[(&'static str, T)]) -> Result<T, CapError> {
    match all.iter().find(|(name, _)| *name == raw) {
        Some(&(_, value)) => Ok(value),
        None => Err(not_one_of(
            path,
            raw,
            &all.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
        )),
    }
}

fn word(path: &str, raw: &str, all: &[&str]) -> Result<String, CapError> {
    if all.contains(&raw) {
        Ok(raw.to_owned())
    } else {
        Err(not_one_of(path, raw, all))
    }
}

fn not_one_of(path: &str, raw: &str, all: &[&str]) -> CapError {
    let hint = if raw == "Very Likely" {
        " (\"Very Likely\" was CAP 1.0; CAP 1.2 has \"Likely\")"
    } else if all.contains(&xml_trim(raw)) {
        " (remove the surrounding whitespace)"
    } else {
        ""
    };
    CapError::Invalid {
        element: path.to_owned(),
        reason: format!("{raw:?} is not one of {}{hint}", all.join(", ")),
    }
}

fn name_of<T: PartialEq + Copy>(all: &[(&'static str, T)], value: T) -> &'static str {
    all.iter()
        .find(|(_, v)| *v == value)
        .map_or("", |(name, _)| name)
}

/// The text of a required element, already checked to be present by [`check_model`].
fn required_text<'a>(node: &'a Node, name: &str) -> &'a str {
    node.child(name).map_or("", |n| n.text.as_str())
}

fn optional_text(node: &Node, name: &str) -> Option<String> {
    node.child(name)
        .map(|n| xml_trim(&n.text))
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

/// The whitespace characters of XML.
const XML_WHITESPACE: [char; 4] = [' ', '\t', '\n', '\r'];

fn xml_trim(s: &str) -> &str {
    s.trim_matches(XML_WHITESPACE)
}

fn xml_words(s: &str) -> impl Iterator<Item = &str> {
    s.split(XML_WHITESPACE).filter(|w| !w.is_empty())
}

/// `xs:decimal`: `[+-]?(digits[.digits?] | .digits)`.
fn decimal(s: &str) -> Option<f64> {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    let valid = digits(whole) && digits(fraction) && (!whole.is_empty() || !fraction.is_empty());
    if valid {
        s.parse().ok()
    } else {
        None
    }
}

/// `xs:integer`.
fn is_integer(s: &str) -> bool {
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    !unsigned.is_empty() && unsigned.bytes().all(|b| b.is_ascii_digit())
}

/// `xs:language`: `[a-zA-Z]{1,8}(-[a-zA-Z0-9]{1,8})*`.
fn is_language(tag: &str) -> bool {
    tag.split('-').enumerate().all(|(i, part)| {
        (1..=8).contains(&part.len())
            && if i == 0 {
                part.bytes().all(|b| b.is_ascii_alphabetic())
            } else {
                part.bytes().all(|b| b.is_ascii_alphanumeric())
            }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_follow_xs_decimal() {
        for ok in ["0", "-1.5", "+41.12", "12.", ".5", "147.0598"] {
            assert!(decimal(ok).is_some(), "{ok}");
        }
        for bad in ["", ".", "1e3", "inf", "NaN", "1.2.3", "1,2", "--1", " 1"] {
            assert!(decimal(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn date_times_follow_the_schema_pattern() {
        let ok = date_time("t", " 2011-10-05T23:04:00+10:00\n").expect("valid");
        assert_eq!(ok.offset().local_minus_utc(), 10 * 3600);
        let minus_zero = date_time("t", "2012-05-02T23:21:04-00:00").expect("valid");
        assert_eq!(minus_zero.offset().local_minus_utc(), 0);
        let midnight = date_time("t", "2012-12-31T24:00:00+00:00").expect("valid");
        assert_eq!(midnight.to_rfc3339(), "2013-01-01T00:00:00+00:00");
        for bad in [
            "2012-05-02T23:21:04Z",
            "2012-05-02T23:21:04.5+00:00",
            "2012-05-02T23:21:04",
            "2012-02-30T23:21:04+00:00",
            "2012-05-02T23:61:04+00:00",
            "2012-05-02T23:21:04+15:00",
            "2012-05-02T23:21:04,00:00",
            "0000-05-02T23:21:04+00:00",
        ] {
            assert!(date_time("t", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn language_tags_follow_xs_language() {
        assert!(is_language("en-US") && is_language("fr-CA") && is_language("i-klingon"));
        assert!(!is_language("") && !is_language("en_US") && !is_language("en-"));
    }

    #[test]
    fn attribute_values_allow_only_predefined_references() {
        assert!(check_attribute_value("", 0, b"a &amp; b &#x41; &#65;").is_ok());
        assert_eq!(
            check_attribute_value("", 0, b"&xxe;"),
            Err(CapError::Entity("xxe".into()))
        );
        assert!(check_attribute_value("", 0, b"&#0;").is_err());
    }

    /// Found by the `cap` fuzz target: a Latin-1 alert whose identifier held byte 0xA0, a
    /// no-break space, was accepted. Unicode spaces and control characters are refused in
    /// identifiers, senders and references, as XML's own spaces are.
    #[test]
    fn unicode_spaces_and_controls_are_refused_in_tokens() {
        for bad in [
            "a\u{a0}b",
            "a\u{2003}b",
            "a\u{85}b",
            "a\u{9f}b",
            "a\u{3000}",
        ] {
            for (element, doc) in [
                (
                    "identifier",
                    alert_with("", "x").replace(">x-1<", &format!(">{bad}<")),
                ),
                (
                    "sender",
                    alert_with("", "x").replace(">isu@example.ro<", &format!(">{bad}<")),
                ),
            ] {
                assert!(
                    matches!(parse(doc.as_bytes()), Err(CapError::Invalid { element: e, .. }) if e.ends_with(element)),
                    "{element} {bad:?}"
                );
            }
            let update = alert_with("", "x").replace(
                "<msgType>Alert</msgType>\n  <scope>Public</scope>",
                &format!(
                    "<msgType>Update</msgType>\n  <scope>Public</scope>\n  \
                     <references>s,{bad},2026-11-22T09:00:00+02:00</references>"
                ),
            );
            assert!(
                matches!(parse(update.as_bytes()), Err(CapError::Invalid { element, .. }) if element == "alert/references"),
                "references {bad:?}"
            );
        }
        let latin1: Vec<u8> = alert_with("", "x")
            .replace("UTF-8", "ISO-8859-1")
            .replace("Pană", "Pana")
            .replace(">x-1<", ">x\u{a0}1<")
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect();
        assert!(matches!(
            parse(&latin1),
            Err(CapError::Invalid { element, .. }) if element == "alert/identifier"
        ));
        let update_ok = alert_with("", "x").replace(
            "<msgType>Alert</msgType>\n  <scope>Public</scope>",
            "<msgType>Update</msgType>\n  <scope>Public</scope>\n  \
             <references>s,x-0,2026-11-22T09:00:00+02:00</references>",
        );
        assert!(parse(update_ok.as_bytes()).is_ok(), "the control document");
    }

    /// Found by the `cap` fuzz target: a Latin-1 alert was logged as lossy UTF-8, so parsing the
    /// logged text again (`dispecer rebuild`) gave another alert. `to_utf8` transcodes it and
    /// says so in the declaration.
    #[test]
    fn to_utf8_gives_text_that_parses_to_the_same_alert() {
        let doc = alert_with("", "Întrerupere în Brasov");
        let latin1: Vec<u8> = doc
            .replace("UTF-8", "iso-8859-1")
            .replace("Pană", "Panâ")
            .chars()
            .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
            .collect();
        assert!(
            std::str::from_utf8(&latin1).is_err(),
            "the test document is not UTF-8"
        );
        let original = parse(&latin1).expect("the Latin-1 alert is valid");
        let text = to_utf8(&latin1).expect("transcoded");
        assert!(
            text.starts_with(r#"<?xml version="1.0" encoding="UTF-8"?>"#),
            "{text}"
        );
        assert_eq!(parse(text.as_bytes()), Ok(original.clone()));
        assert_eq!(
            original.infos[0].headline.as_deref(),
            Some("Întrerupere în Brasov")
        );
        let single = b"<?xml version='1.0' encoding='latin1' standalone='yes'?><a>\xE2</a>";
        assert_eq!(
            to_utf8(single).as_deref(),
            Ok(r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?><a>â</a>"#)
        );
        let utf8 = alert_with("", "Pană");
        assert_eq!(to_utf8(utf8.as_bytes()), Ok(utf8));
    }

    /// Found by the `cap` fuzz target (2026-11-30): a declaration with an attribute named
    /// `vers&lencodingt;ion` and then `encoding="ISO-8859-1"` was read as Latin-1, and the event
    /// log's copy had the wrong label rewritten, so a rebuild read it back as mojibake. A
    /// declaration is now read as XML 1.0 writes it, and anything else is refused.
    #[test]
    fn a_malformed_xml_declaration_is_refused() {
        let doc = alert_with("", "Pană");
        for decl in [
            r#"<?xml vers&lencodingt;ion=".1.0" encoding="ISO-8859-1"?>"#,
            r#"<?xml encoding="UTF-8"?>"#,
            r#"<?xml version="1.0" standalone="yes" encoding="UTF-8"?>"#,
            r#"<?xml version="1.0" encoding="UTF-8" foo="bar"?>"#,
            r#"<?xml version=1.0 encoding="UTF-8"?>"#,
            r#"<?xml version="1.0"encoding="UTF-8"?>"#,
            r#"<?xml version="2.0" encoding="UTF-8"?>"#,
            r#"<?xml version="1.0" encoding="8bit"?>"#,
            r#"<?xml version="1.0" encoding="UTF-8" standalone="maybe"?>"#,
            r#"<?xml version="1.0" encoding="UTF-8"#,
        ] {
            let bad = doc.replacen(r#"<?xml version="1.0" encoding="UTF-8"?>"#, decl, 1);
            match parse(bad.as_bytes()) {
                Err(CapError::NotXml(why)) => {
                    assert!(why.contains("XML declaration"), "{decl}: {why}");
                }
                other => panic!("{decl}: {other:?}"),
            }
        }
        for decl in [
            r#"<?xml version = '1.0'  encoding = 'utf-8' ?>"#,
            "<?xml\tversion=\"1.1\"\nstandalone=\"no\"?>",
            r#"<?xml version="1.0"?>"#,
        ] {
            let good = doc.replacen(r#"<?xml version="1.0" encoding="UTF-8"?>"#, decl, 1);
            assert!(parse(good.as_bytes()).is_ok(), "{decl}");
        }
    }

    /// A valid alert whose `<headline>` is `headline` (raw XML), after an optional prologue.
    fn alert_with(prologue: &str, headline: &str) -> String {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>{prologue}
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>x-1</identifier><sender>isu@example.ro</sender>
  <sent>2026-11-22T10:00:00+02:00</sent><status>Actual</status><msgType>Alert</msgType>
  <scope>Public</scope>
  <info><category>Infra</category><event>Pană</event><urgency>Immediate</urgency>
    <severity>Moderate</severity><certainty>Observed</certainty>
    <headline>{headline}</headline>
    <area><areaDesc>Centru</areaDesc><circle>45.64,25.59 1</circle></area></info>
</alert>"#
        )
    }

    /// XML external entities (file, URL, parameter entities) and entity expansion bombs
    /// ("billion laughs", quadratic blow-up) are refused, never expanded: the refusal is a
    /// `Doctype` or an `Entity` error, and nothing of an entity's would-be value comes out.
    #[test]
    fn external_entities_and_billion_laughs_are_refused_not_expanded() {
        let laughs: String = (1..=9)
            .map(|i| {
                let prev = if i == 1 {
                    "lol".to_owned()
                } else {
                    format!("lol{}", i - 1)
                };
                format!("<!ENTITY lol{i} \"{}\">", format!("&{prev};").repeat(10))
            })
            .collect();
        let quadratic = format!("<!ENTITY a \"{}\">", "x".repeat(50_000));
        let with_doctype = [
            r#"<!DOCTYPE alert [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>"#.to_owned(),
            r#"<!DOCTYPE alert [<!ENTITY xxe SYSTEM "http://127.0.0.1:1/x">]>"#.to_owned(),
            r#"<!DOCTYPE alert [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>"#.to_owned(),
            r#"<!DOCTYPE alert SYSTEM "http://127.0.0.1:1/cap.dtd">"#.to_owned(),
            format!(r#"<!DOCTYPE alert [<!ENTITY lol "lol">{laughs}]>"#),
            format!("<!DOCTYPE alert [{quadratic}]>"),
        ];
        for (i, prologue) in with_doctype.iter().enumerate() {
            let headline = if i < 4 {
                "&xxe;"
            } else if i == 4 {
                "&lol9;"
            } else {
                &"&a;".repeat(100)
            };
            let doc = alert_with(prologue, headline);
            assert_eq!(parse(doc.as_bytes()), Err(CapError::Doctype), "case {i}");
        }
        // The same references without their DOCTYPE: refused at the first unknown entity.
        for (name, headline) in [("xxe", "&xxe;"), ("lol9", "&lol9;"), ("a", "&a;&a;")] {
            let doc = alert_with("", headline);
            assert_eq!(
                parse(doc.as_bytes()),
                Err(CapError::Entity(name.into())),
                "{name}"
            );
        }
        // In an attribute value too.
        let doc = alert_with("", "ok").replace(
            r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">"#,
            r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2" xml:lang="&xxe;">"#,
        );
        assert_eq!(parse(doc.as_bytes()), Err(CapError::Entity("xxe".into())));
        // The control: the same alert with a plain headline is accepted, so the refusals above
        // are the entities', not some other mistake in the document.
        let ok = parse(alert_with("", "Pană &amp; &#x41;").as_bytes()).expect("a valid alert");
        assert_eq!(ok.infos[0].headline.as_deref(), Some("Pană & A"));
    }
}
