package scepserver_test

import (
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"encoding/asn1"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"

	"github.com/scepter/scepter/internal/cms"
	"github.com/scepter/scepter/internal/scep"
)

// signedAttr is one signed attribute of a pkiMessage as resignAttrs hands
// it to an edit: its type and the DER of each of its values.
type signedAttr struct {
	oid    asn1.ObjectIdentifier
	values [][]byte
}

// resignAttrs rewrites the signed attributes of der, a pkiMessage that
// key signed with SHA-256 and RSA, with edit, and signs them again: the
// signature is good whatever edit made of them.
func resignAttrs(t *testing.T, der []byte, key crypto.Signer, edit func([]signedAttr) []signedAttr) []byte {
	t.Helper()
	fail := func(what string) { t.Helper(); t.Fatalf("resignAttrs: cannot read %s", what) }
	in := cryptobyte.String(der)
	var ci, ctype, explicit, sd cryptobyte.String
	if !in.ReadASN1(&ci, cbasn1.SEQUENCE) || !ci.ReadASN1Element(&ctype, cbasn1.OBJECT_IDENTIFIER) ||
		!ci.ReadASN1(&explicit, cbasn1.Tag(0).Constructed().ContextSpecific()) || !explicit.ReadASN1(&sd, cbasn1.SEQUENCE) {
		fail("the ContentInfo")
	}
	var sdElems [][]byte
	for !sd.Empty() {
		var e cryptobyte.String
		if !sd.ReadAnyASN1Element(&e, nil) {
			fail("the SignedData")
		}
		sdElems = append(sdElems, e)
	}
	infos := cryptobyte.String(sdElems[len(sdElems)-1])
	var set, si cryptobyte.String
	if !infos.ReadASN1(&set, cbasn1.SET) || !set.ReadASN1(&si, cbasn1.SEQUENCE) {
		fail("the SignerInfos")
	}
	var siElems [][]byte
	for !si.Empty() {
		var e cryptobyte.String
		if !si.ReadAnyASN1Element(&e, nil) {
			fail("the SignerInfo")
		}
		siElems = append(siElems, e)
	}
	// version, sid, digestAlgorithm, [0] signedAttrs, signatureAlgorithm, signature
	if len(siElems) != 6 {
		fail("a SignerInfo of 6 elements")
	}
	raw := cryptobyte.String(siElems[3])
	var attrsIn cryptobyte.String
	if !raw.ReadASN1(&attrsIn, cbasn1.Tag(0).Constructed().ContextSpecific()) {
		fail("the signed attributes")
	}
	var attrs []signedAttr
	for !attrsIn.Empty() {
		var a, values cryptobyte.String
		var oid asn1.ObjectIdentifier
		if !attrsIn.ReadASN1(&a, cbasn1.SEQUENCE) || !a.ReadASN1ObjectIdentifier(&oid) || !a.ReadASN1(&values, cbasn1.SET) {
			fail("an attribute")
		}
		sa := signedAttr{oid: oid}
		for !values.Empty() {
			var v cryptobyte.String
			if !values.ReadAnyASN1Element(&v, nil) {
				fail("an attribute value")
			}
			sa.values = append(sa.values, v)
		}
		attrs = append(attrs, sa)
	}
	attrs = edit(attrs)
	addAttrs := func(b *cryptobyte.Builder) {
		for _, a := range attrs {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				b.AddASN1ObjectIdentifier(a.oid)
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					for _, v := range a.values {
						b.AddBytes(v)
					}
				})
			})
		}
	}
	var signed cryptobyte.Builder
	signed.AddASN1(cbasn1.SET, addAttrs)
	digest := sha256.Sum256(signed.BytesOrPanic())
	sig, err := key.Sign(rand.Reader, digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	var b cryptobyte.Builder
	b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
		b.AddBytes(ctype)
		b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for _, e := range sdElems[:len(sdElems)-1] {
					b.AddBytes(e)
				}
				b.AddASN1(cbasn1.SET, func(b *cryptobyte.Builder) {
					b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
						for _, e := range siElems[:3] {
							b.AddBytes(e)
						}
						b.AddASN1(cbasn1.Tag(0).Constructed().ContextSpecific(), addAttrs)
						b.AddBytes(siElems[4])
						b.AddASN1OctetString(sig)
					})
				})
			})
		})
	})
	return b.BytesOrPanic()
}

// RFC 5652 attribute and content types the edits below use.
var (
	oidContentType   = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 3}
	oidMessageDigest = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 4}
	oidSignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
)

func mustDER(t *testing.T, v any) []byte {
	t.Helper()
	der, err := asn1.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return der
}

// Malformed outer signed attributes, signed with a good signature, are
// refused with their real cause: a signingTime that is no Time was told
// it had none, and a repeated or multi-valued signingTime, a missing
// contentType or messageDigest, a contentType that is not the content's,
// or a messageDigest that is not its digest were told "signature
// verification failed" (r122 D3). These checks run on public data before
// anything is decrypted: no oracle in naming them. The failInfo is as it
// was; a bad signature is still called one.
func TestMalformedSignedAttributesAreNamed(t *testing.T) {
	var logged syncBuffer
	ts := newTestServer(t, serverOptions{log: slog.New(slog.NewTextHandler(&logged, nil))})
	withAttr := func(oid asn1.ObjectIdentifier, f func(a signedAttr) []signedAttr) func([]signedAttr) []signedAttr {
		return func(in []signedAttr) (out []signedAttr) {
			for _, a := range in {
				if a.oid.Equal(oid) {
					out = append(out, f(a)...)
				} else {
					out = append(out, a)
				}
			}
			return out
		}
	}
	laterTime := mustDER(t, ts.Clock.Now().Add(-time.Minute).UTC())
	tests := []struct {
		name     string
		edit     func([]signedAttr) []signedAttr
		failInfo scep.FailInfo
		want     string
	}{
		{"signingTime an INTEGER", withAttr(cms.OIDSigningTime, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{mustDER(t, 20261207)}}}
		}), scep.BadTime, "the message's signingTime attribute is an INTEGER, want a UTCTime or GeneralizedTime (RFC 5652 section 11.3)"},
		{"signingTime a UTCTime that is no time", withAttr(cms.OIDSigningTime, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{{byte(asn1.TagUTCTime), 4, 'n', 'o', 'p', 'e'}}}}
		}), scep.BadTime, `the message's signingTime attribute is a UTCTime that is no valid time ("nope"), want a UTCTime or GeneralizedTime (RFC 5652 section 11.3)`},
		{"signingTime twice", withAttr(cms.OIDSigningTime, func(a signedAttr) []signedAttr {
			return []signedAttr{a, {a.oid, [][]byte{laterTime}}}
		}), scep.BadMessageCheck, "the signingTime attribute appears more than once; RFC 5652 section 11 allows it once"},
		{"signingTime with two values", withAttr(cms.OIDSigningTime, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{a.values[0], laterTime}}}
		}), scep.BadMessageCheck, "the signingTime attribute has 2 values; RFC 5652 section 11 allows one"},
		{"no contentType", withAttr(oidContentType, func(signedAttr) []signedAttr { return nil }),
			scep.BadMessageCheck, "the signed attributes have no contentType attribute; RFC 5652 section 5.3 requires it"},
		{"no messageDigest", withAttr(oidMessageDigest, func(signedAttr) []signedAttr { return nil }),
			scep.BadMessageCheck, "the signed attributes have no messageDigest attribute; RFC 5652 section 5.3 requires it"},
		{"contentType signedData", withAttr(oidContentType, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{mustDER(t, oidSignedData)}}}
		}), scep.BadMessageCheck, "the contentType attribute is signedData (1.2.840.113549.1.7.2), where the signed content is data (1.2.840.113549.1.7.1); RFC 5652 section 11.1 requires them to match"},
		{"contentType an INTEGER", withAttr(oidContentType, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{mustDER(t, 7)}}}
		}), scep.BadMessageCheck, "the contentType attribute is not an OBJECT IDENTIFIER"},
		{"messageDigest of other content", withAttr(oidMessageDigest, func(a signedAttr) []signedAttr {
			other := sha256.Sum256([]byte("other content"))
			return []signedAttr{{a.oid, [][]byte{mustDER(t, other[:])}}}
		}), scep.BadMessageCheck, "the messageDigest attribute is not the SHA-256 digest of the signed content"},
		{"messageDigest a UTF8String", withAttr(oidMessageDigest, func(a signedAttr) []signedAttr {
			return []signedAttr{{a.oid, [][]byte{mustDER(t, "digest")}}}
		}), scep.BadMessageCheck, "the messageDigest attribute is not an OCTET STRING"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			key := testKey(t, i%4)
			der, _ := ts.build(t, reqParams{key: key})
			der = resignAttrs(t, der, key, tt.edit)
			resp, body := ts.post(t, der)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("HTTP %d: %.300q", resp.StatusCode, body)
			}
			rep, err := scep.Parse(body)
			if err != nil {
				t.Fatal(err)
			}
			wantFailure(t, rep, tt.failInfo)
			if rep.FailInfoText != tt.want {
				t.Errorf("failInfoText %q,\nwant %q", rep.FailInfoText, tt.want)
			}
			if !strings.Contains(logged.String(), "reason="+strconv.Quote(tt.want)) {
				t.Errorf("no log line with reason %q", tt.want)
			}
		})
	}

	// The edit itself leaves a good message good, and a bad signature is
	// still called one.
	key := testKey(t, 0)
	der, _ := ts.build(t, reqParams{key: key, subject: "CN=resigned,O=Acme"})
	der = resignAttrs(t, der, key, func(a []signedAttr) []signedAttr { return a })
	if _, body := ts.post(t, der); !isSuccess(t, body) {
		t.Fatal("a message signed again unchanged is not issued")
	}
	der, _ = ts.build(t, reqParams{key: key, subject: "CN=badsig,O=Acme"})
	der = resignAttrs(t, der, testKey(t, 1), func(a []signedAttr) []signedAttr { return a })
	_, body := ts.post(t, der)
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	wantFailure(t, rep, scep.BadMessageCheck)
	if rep.FailInfoText != "signature verification failed" {
		t.Errorf("a bad signature: failInfoText %q", rep.FailInfoText)
	}
}

// isSuccess reports whether a CertRep body says SUCCESS.
func isSuccess(t *testing.T, body []byte) bool {
	t.Helper()
	rep, err := scep.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if rep.PKIStatus != scep.StatusSuccess {
		t.Logf("pkiStatus %s failInfo %s: %s", rep.PKIStatus, rep.FailInfo, rep.FailInfoText)
	}
	return rep.PKIStatus == scep.StatusSuccess
}
