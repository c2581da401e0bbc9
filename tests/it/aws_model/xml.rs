//! A small XML tree, enough to rewrite moto's query-protocol answers: parse
//! with quick-xml, change a few elements, write the rest back byte for byte
//! (text stays as moto escaped it, attributes as moto wrote them).

use quick_xml::escape::{escape, unescape};
use quick_xml::events::Event;
use quick_xml::Reader;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Element(Element),
    /// Character data, still escaped as it appeared.
    Text(String),
    /// Markup kept verbatim: declarations, comments, CDATA.
    Raw(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    /// The attributes as written, with their leading whitespace.
    attrs: String,
    pub children: Vec<Node>,
}

/// A whole answer: what precedes the root (`<?xml …?>`), and the root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    prolog: Vec<Node>,
    pub root: Element,
}

pub fn parse(text: &str) -> Result<Document, String> {
    let mut reader = Reader::from_str(text);
    let mut prolog = Vec::new();
    let mut open: Vec<Element> = Vec::new();
    let mut root = None;
    let raw = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("at byte {}: {e}", reader.buffer_position()))?;
        let node = match event {
            Event::Start(e) => {
                open.push(start(&e));
                continue;
            }
            Event::End(_) => {
                let done = open.pop().ok_or("an end tag without a start")?;
                Node::Element(done)
            }
            Event::Empty(e) => Node::Element(start(&e)),
            Event::Text(e) => Node::Text(raw(&e)),
            // quick-xml reports `&amp;` and `&#10;` apart from the text
            // around them; kept escaped, they rejoin it when written.
            Event::GeneralRef(e) => Node::Text(format!("&{};", raw(&e))),
            Event::CData(e) => Node::Raw(format!("<![CDATA[{}]]>", raw(&e))),
            Event::Comment(e) => Node::Raw(format!("<!--{}-->", raw(&e))),
            Event::Decl(e) => Node::Raw(format!("<?{}?>", raw(&e))),
            Event::PI(e) => Node::Raw(format!("<?{}?>", raw(&e))),
            Event::DocType(e) => Node::Raw(format!("<!DOCTYPE {}>", raw(&e))),
            Event::Eof => break,
        };
        match (open.last_mut(), node) {
            (Some(parent), node) => parent.children.push(node),
            (None, Node::Element(e)) if root.is_none() => root = Some(e),
            (None, Node::Element(e)) => return Err(format!("a second root <{}>", e.name)),
            (None, node) if root.is_none() => prolog.push(node),
            // Whitespace after the root is dropped.
            (None, _) => {}
        }
    }
    if let Some(unclosed) = open.last() {
        return Err(format!("<{}> is not closed", unclosed.name));
    }
    Ok(Document {
        prolog,
        root: root.ok_or("no root element")?,
    })
}

fn start(e: &quick_xml::events::BytesStart) -> Element {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let all = String::from_utf8_lossy(e).into_owned();
    Element {
        attrs: all[name.len()..].to_string(),
        name,
        children: Vec::new(),
    }
}

impl Document {
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        for node in &self.prolog {
            write_node(node, &mut out);
        }
        self.root.write(&mut out);
        out
    }
}

fn write_node(node: &Node, out: &mut String) {
    match node {
        Node::Element(e) => e.write(out),
        Node::Text(t) | Node::Raw(t) => out.push_str(t),
    }
}

impl Element {
    pub fn new(name: &str) -> Element {
        Element {
            name: name.to_string(),
            attrs: String::new(),
            children: Vec::new(),
        }
    }

    /// `<name>text</name>`, the text escaped.
    pub fn with_text(name: &str, text: &str) -> Element {
        let mut e = Element::new(name);
        e.set_text(text);
        e
    }

    pub fn push(&mut self, child: Element) -> &mut Element {
        self.children.push(Node::Element(child));
        self
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    pub fn child(&self, name: &str) -> Option<&Element> {
        self.elements().find(|e| e.name == name)
    }

    pub fn child_mut(&mut self, name: &str) -> Option<&mut Element> {
        self.elements_mut().find(|e| e.name == name)
    }

    /// Every element reached by following `path` from here, each step
    /// through all children of that name (`reservationSet/item/…`).
    pub fn all(&self, path: &str) -> Vec<&Element> {
        let mut at = vec![self];
        for step in path.split('/') {
            at = at
                .into_iter()
                .flat_map(|e| e.elements().filter(move |c| c.name == step))
                .collect();
        }
        at
    }

    /// Calls `f` on every element [`Element::all`] would return.
    pub fn each_mut(&mut self, path: &str, f: &mut dyn FnMut(&mut Element)) {
        match path.split_once('/') {
            None => self
                .elements_mut()
                .filter(|c| c.name == path)
                .for_each(&mut *f),
            Some((step, rest)) => self
                .elements_mut()
                .filter(|c| c.name == step)
                .for_each(|c| c.each_mut(rest, f)),
        }
    }

    /// The first element at `path`, if any.
    pub fn at(&self, path: &str) -> Option<&Element> {
        self.all(path).into_iter().next()
    }

    pub fn at_mut(&mut self, path: &str) -> Option<&mut Element> {
        match path.split_once('/') {
            None => self.child_mut(path),
            Some((step, rest)) => self
                .elements_mut()
                .filter(|c| c.name == step)
                .find_map(|c| c.at_mut(rest)),
        }
    }

    /// The text at `path` (empty when the element is absent or empty).
    pub fn text_at(&self, path: &str) -> String {
        self.at(path).map(Element::text).unwrap_or_default()
    }

    /// Every descendant named `name`, at any depth, in document order.
    pub fn descendants(&self, name: &str) -> Vec<&Element> {
        let mut found = Vec::new();
        for child in self.elements() {
            if child.name == name {
                found.push(child);
            }
            found.extend(child.descendants(name));
        }
        found
    }

    /// This element's own text, unescaped.
    pub fn text(&self) -> String {
        let raw: String = self
            .children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                _ => None,
            })
            .collect();
        match unescape(&raw) {
            Ok(text) => text.into_owned(),
            Err(_) => raw,
        }
    }

    /// Replaces everything inside with `text`.
    pub fn set_text(&mut self, text: &str) {
        self.children = vec![Node::Text(escape(text).into_owned())];
    }

    /// Keeps the child elements for which `keep` holds (and all text).
    pub fn retain(&mut self, mut keep: impl FnMut(&Element) -> bool) {
        self.children.retain(|n| match n {
            Node::Element(e) => keep(e),
            _ => true,
        });
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        out.push_str(&self.attrs);
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for child in &self.children {
            write_node(child, out);
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOTO: &str = "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
        <DescribeInstancesResponse xmlns=\"http://ec2.amazonaws.com/doc/2016-11-15\">\
        <reservationSet><item><reservationId>r-1</reservationId><groupSet/>\
        <instancesSet><item><instanceId>i-1</instanceId><instanceState><code>16</code>\
        <name>running</name></instanceState><tagSet><item><key>Name</key>\
        <value>a &amp; b &lt;c&gt;</value></item></tagSet></item></instancesSet></item>\
        </reservationSet><requestId>request-id</requestId></DescribeInstancesResponse>";

    #[test]
    fn an_unchanged_document_is_written_back_byte_for_byte() {
        assert_eq!(parse(MOTO).unwrap().to_xml(), MOTO);
        let spaced = "<A x='1'>\n  <B>t</B>\n  <C/>\n</A>";
        assert_eq!(parse(spaced).unwrap().to_xml(), spaced);
    }

    #[test]
    fn text_is_read_unescaped_and_written_escaped() {
        let mut doc = parse(MOTO).unwrap();
        let path = "reservationSet/item/instancesSet/item/tagSet/item/value";
        assert_eq!(doc.root.text_at(path), "a & b <c>");
        doc.root.at_mut(path).unwrap().set_text("x<y");
        assert!(doc.to_xml().contains("<value>x&lt;y</value>"));
    }

    #[test]
    fn paths_reach_every_repeated_element() {
        let xml = "<R><set><item><id>1</id></item><item><id>2</id></item></set>\
                   <set><item><id>3</id></item></set></R>";
        let mut doc = parse(xml).unwrap();
        let ids: Vec<String> = doc
            .root
            .all("set/item/id")
            .iter()
            .map(|e| e.text())
            .collect();
        assert_eq!(ids, ["1", "2", "3"]);
        doc.root.each_mut("set/item", &mut |item| {
            let id = item.text_at("id");
            item.push(Element::with_text(
                "double",
                &(id.parse::<u32>().unwrap() * 2).to_string(),
            ));
        });
        assert_eq!(doc.root.text_at("set/item/double"), "2");
        doc.root
            .each_mut("set", &mut |set| set.retain(|i| i.text_at("id") != "2"));
        assert_eq!(
            doc.to_xml(),
            "<R><set><item><id>1</id><double>2</double></item></set>\
             <set><item><id>3</id><double>6</double></item></set></R>"
        );
        assert_eq!(doc.root.descendants("id").len(), 2);
    }

    #[test]
    fn broken_documents_are_refused() {
        assert!(parse("<A><B></A>").is_err());
        assert!(parse("<A>").is_err());
        assert!(parse("").is_err());
        assert!(parse("<A/><B/>").is_err());
    }
}
