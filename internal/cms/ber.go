package cms

// BER -> DER normalisation.
//
// Real clients (and `openssl cms -stream`) send BER: indefinite lengths and
// OCTET STRINGs split into constructed segments. cryptobyte only reads DER
// lengths, so every parser first rewrites the message with definite, minimal
// lengths and primitive OCTET STRINGs. SET OF elements are not re-sorted:
// signatures are checked over the bytes as sent (see Verify).
//
// Only the structure visible through constructed elements is rewritten; the
// contents of primitive elements (e.g. an eContent OCTET STRING carrying an
// inner EnvelopedData) are untouched and normalised when they are parsed.

const (
	tagOctetString            = 0x04
	tagConstructedOctetString = 0x24
	maxHeaderLen              = 6 // tag + 0x84 + 4 length octets
)

type berHeader struct {
	tag        byte
	hdrLen     int
	length     int // content length; unused when indefinite
	indefinite bool
	minimal    bool // definite length in its shortest form
}

func (h berHeader) constructed() bool { return h.tag&0x20 != 0 }

// readHeader parses the identifier and length octets at the start of b and
// checks that a definite length fits in b.
func readHeader(b []byte) (berHeader, error) {
	var h berHeader
	if len(b) < 2 {
		return h, malformed("truncated element")
	}
	h.tag = b[0]
	if h.tag&0x1f == 0x1f {
		return h, malformed("high-tag-number form not supported")
	}
	lb := b[1]
	switch {
	case lb < 0x80:
		h.hdrLen, h.length, h.minimal = 2, int(lb), true
	case lb == 0x80:
		if !h.constructed() {
			return h, malformed("indefinite length on a primitive element")
		}
		h.hdrLen, h.indefinite = 2, true
		return h, nil
	default:
		n := int(lb & 0x7f)
		if n > 4 {
			return h, malformed("length of %d octets", n)
		}
		if len(b) < 2+n {
			return h, malformed("truncated length")
		}
		var l uint64
		for _, c := range b[2 : 2+n] {
			l = l<<8 | uint64(c)
		}
		h.hdrLen = 2 + n
		h.minimal = l >= 0x80 && b[2] != 0
		if l > uint64(len(b)-h.hdrLen) {
			return h, malformed("length %d exceeds input", l)
		}
		h.length = int(l)
	}
	if h.length > len(b)-h.hdrLen {
		return h, malformed("length %d exceeds input", h.length)
	}
	return h, nil
}

// normalize returns a DER-shaped copy of the single BER element in b.
// Trailing data after the element is an error.
func normalize(b []byte) ([]byte, error) {
	if len(b) > MaxMessageSize {
		return nil, malformed("message of %d bytes exceeds the %d byte limit", len(b), MaxMessageSize)
	}
	if n, ok := derShaped(b, 0); ok {
		if n != len(b) {
			return nil, malformed("%d bytes of trailing data", len(b)-n)
		}
		return clone(b), nil // already DER-shaped: the common case
	}
	out, n, err := convert(b, 0, make([]byte, 0, len(b)+64))
	if err != nil {
		return nil, err
	}
	if n != len(b) {
		return nil, malformed("%d bytes of trailing data", len(b)-n)
	}
	return out, nil
}

// derShaped reports whether the element at the start of b already has only
// definite minimal lengths and no constructed OCTET STRING, and its size.
// Any problem just returns false; convert then reports the precise error.
func derShaped(b []byte, depth int) (int, bool) {
	if depth > maxDepth {
		return 0, false
	}
	h, err := readHeader(b)
	if err != nil || h.indefinite || !h.minimal || h.tag == 0 || h.tag == tagConstructedOctetString {
		return 0, false
	}
	if h.constructed() {
		c := b[h.hdrLen : h.hdrLen+h.length]
		for len(c) > 0 {
			n, ok := derShaped(c, depth+1)
			if !ok {
				return 0, false
			}
			c = c[n:]
		}
	}
	return h.hdrLen + h.length, true
}

// convert appends the normalised form of the element at the start of b to
// out and returns how many input bytes it consumed.
func convert(b []byte, depth int, out []byte) ([]byte, int, error) {
	if depth > maxDepth {
		return nil, 0, malformed("nesting deeper than %d", maxDepth)
	}
	h, err := readHeader(b)
	if err != nil {
		return nil, 0, err
	}
	if h.tag == 0 {
		return nil, 0, malformed("unexpected end-of-contents")
	}
	if !h.constructed() {
		out = appendHeader(out, h.tag, h.length)
		return append(out, b[h.hdrLen:h.hdrLen+h.length]...), h.hdrLen + h.length, nil
	}
	tag, segments := h.tag, false
	if h.tag == tagConstructedOctetString {
		// A segmented OCTET STRING becomes one primitive OCTET STRING.
		tag, segments = tagOctetString, true
	}
	// Reserve room for the longest header, write the contents, then slide
	// them down behind the real header once the length is known.
	start := len(out)
	out = append(out, make([]byte, maxHeaderLen)...)
	out, n, err := convertContents(b[h.hdrLen:], h, depth, out, segments)
	if err != nil {
		return nil, 0, err
	}
	contentLen := len(out) - start - maxHeaderLen
	hdr := appendHeader(make([]byte, 0, maxHeaderLen), tag, contentLen)
	copy(out[start+len(hdr):], out[start+maxHeaderLen:])
	copy(out[start:], hdr)
	return out[:start+len(hdr)+contentLen], h.hdrLen + n, nil
}

// convertContents converts the contents of a constructed element: exactly
// h.length bytes for a definite length, or up to and including the
// end-of-contents octets for an indefinite one. With segments set, children
// must be OCTET STRINGs and only their contents are appended.
func convertContents(b []byte, h berHeader, depth int, out []byte, segments bool) ([]byte, int, error) {
	if !h.indefinite {
		b = b[:h.length]
	}
	pos := 0
	for {
		if !h.indefinite && pos == len(b) {
			return out, pos, nil
		}
		if h.indefinite && len(b)-pos >= 2 && b[pos] == 0 && b[pos+1] == 0 {
			return out, pos + 2, nil
		}
		if pos >= len(b) {
			return nil, 0, malformed("missing end-of-contents")
		}
		var n int
		var err error
		if segments {
			out, n, err = convertSegment(b[pos:], depth+1, out)
		} else {
			out, n, err = convert(b[pos:], depth+1, out)
		}
		if err != nil {
			return nil, 0, err
		}
		pos += n
	}
}

// convertSegment appends the contents of one segment of a constructed
// OCTET STRING (itself possibly constructed).
func convertSegment(b []byte, depth int, out []byte) ([]byte, int, error) {
	if depth > maxDepth {
		return nil, 0, malformed("nesting deeper than %d", maxDepth)
	}
	h, err := readHeader(b)
	if err != nil {
		return nil, 0, err
	}
	switch h.tag {
	case tagOctetString:
		return append(out, b[h.hdrLen:h.hdrLen+h.length]...), h.hdrLen + h.length, nil
	case tagConstructedOctetString:
		out, n, err := convertContents(b[h.hdrLen:], h, depth, out, true)
		if err != nil {
			return nil, 0, err
		}
		return out, h.hdrLen + n, nil
	}
	return nil, 0, malformed("segment of a constructed OCTET STRING has tag 0x%02x", h.tag)
}

// appendHeader appends a tag and a minimal definite length.
func appendHeader(out []byte, tag byte, length int) []byte {
	out = append(out, tag)
	switch {
	case length < 0x80:
		return append(out, byte(length))
	case length <= 0xff:
		return append(out, 0x81, byte(length))
	case length <= 0xffff:
		return append(out, 0x82, byte(length>>8), byte(length))
	case length <= 0xffffff:
		return append(out, 0x83, byte(length>>16), byte(length>>8), byte(length))
	}
	return append(out, 0x84, byte(length>>24), byte(length>>16), byte(length>>8), byte(length))
}
