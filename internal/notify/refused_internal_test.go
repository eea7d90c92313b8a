package notify

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A notification delivered to some recipients names the refused ones in
// its audit event, apart from those it reached.
func TestWithRecipients(t *testing.T) {
	ev := pki.AuditEvent{Detail: `{"channel":"email","recipients":["pki@example.com","Gone@example.com"]}`}
	var detail struct {
		Channel    string   `json:"channel"`
		Recipients []string `json:"recipients"`
		Refused    []string `json:"refused"`
	}
	if err := json.Unmarshal([]byte(withRecipients(ev, []string{"pki@example.com"}, []string{"gone@example.com"}).Detail), &detail); err != nil {
		t.Fatal(err)
	}
	if detail.Channel != "email" || !slices.Equal(detail.Recipients, []string{"pki@example.com"}) || !slices.Equal(detail.Refused, []string{"gone@example.com"}) {
		t.Errorf("detail %+v", detail)
	}
}
