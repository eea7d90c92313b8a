package est

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"strings"
)

// ServerKeyGenReply is the two parts of a serverkeygen answer (RFC 7030
// §4.4.2): the private key and the certificate.
type ServerKeyGenReply struct {
	// Key is the DER of the key part: a PKCS#8 PrivateKeyInfo, or, when
	// Encrypted, a CMS EnvelopedData.
	Key       []byte
	Encrypted bool
	// CertsOnly is the DER certs-only SignedData holding the certificate.
	CertsOnly []byte
}

// maxParts bounds the parts ParseServerKeyGenReply reads.
const maxParts = 8

// MarshalServerKeyGenReply encodes the reply as multipart/mixed with base64
// parts and returns the body and its Content-Type.
func MarshalServerKeyGenReply(r ServerKeyGenReply) (body []byte, contentType string, err error) {
	var buf bytes.Buffer
	w := multipart.NewWriter(&buf)
	var rnd [12]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, "", err
	}
	if err := w.SetBoundary("est-" + hex.EncodeToString(rnd[:])); err != nil {
		return nil, "", err
	}
	keyType := ContentTypePKCS8
	if r.Encrypted {
		keyType = ContentTypeServerKey
	}
	for _, p := range []struct {
		ct  string
		der []byte
	}{{keyType, r.Key}, {ContentTypeCertsOnly, r.CertsOnly}} {
		h := textproto.MIMEHeader{}
		h.Set("Content-Type", p.ct)
		h.Set("Content-Transfer-Encoding", "base64")
		pw, err := w.CreatePart(h)
		if err != nil {
			return nil, "", err
		}
		if _, err := pw.Write(EncodeBase64(p.der)); err != nil {
			return nil, "", err
		}
	}
	if err := w.Close(); err != nil {
		return nil, "", err
	}
	return buf.Bytes(), "multipart/mixed; boundary=" + w.Boundary(), nil
}

// ParseServerKeyGenReply decodes a serverkeygen answer: a multipart/mixed
// body with a key part (application/pkcs8, or the encrypted
// server-generated-key) and a certs-only part, in any order.
func ParseServerKeyGenReply(contentType string, body []byte) (*ServerKeyGenReply, error) {
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/mixed" || params["boundary"] == "" {
		return nil, fmt.Errorf("est: serverkeygen reply is %q, want multipart/mixed with a boundary", contentType)
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	out := &ServerKeyGenReply{}
	for n := 0; ; n++ {
		if n == maxParts {
			return nil, errors.New("est: too many parts in the serverkeygen reply")
		}
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("est: serverkeygen reply: %w", err)
		}
		raw, err := io.ReadAll(io.LimitReader(p, MaxBodyBytes))
		if err != nil {
			return nil, fmt.Errorf("est: serverkeygen reply: %w", err)
		}
		der, err := DecodeReply(raw)
		if err != nil {
			return nil, fmt.Errorf("est: serverkeygen part %d: %w", n, err)
		}
		pt, pparams, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
		switch {
		case pt == "application/pkcs8":
			out.Key = der
		case pt == "application/pkcs7-mime" && strings.EqualFold(pparams["smime-type"], "server-generated-key"):
			out.Key, out.Encrypted = der, true
		case pt == "application/pkcs7-mime":
			out.CertsOnly = der
		default:
			return nil, fmt.Errorf("est: serverkeygen part %d has content type %q", n, p.Header.Get("Content-Type"))
		}
	}
	if out.Key == nil || out.CertsOnly == nil {
		return nil, errors.New("est: the serverkeygen reply lacks the key or the certificate part")
	}
	return out, nil
}
