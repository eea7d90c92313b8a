package pkitest

import (
	"os"
	"path/filepath"

	"github.com/scepter/scepter/internal/scep"
)

// SCEPCaptureMessages returns the DER pkiMessages of every capture under
// dir (the POST bodies, and the GET queries decoded): seeds for fuzzers.
func SCEPCaptureMessages(dir string) [][]byte {
	var msgs [][]byte
	dirs, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, d := range dirs {
		if b, err := os.ReadFile(filepath.Join(d, "request.body")); err == nil {
			msgs = append(msgs, b)
		}
		if q, err := os.ReadFile(filepath.Join(d, "request.query")); err == nil {
			if der, err := scep.DecodeQueryMessage(string(q)); err == nil {
				msgs = append(msgs, der)
			}
		}
	}
	return msgs
}
