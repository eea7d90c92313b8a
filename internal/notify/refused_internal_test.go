package notify

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/scepter/scepter/internal/pki"
)

// A notification's audit event says of each recipient whether it has the
// notification, refused it for good, or does not have it.
func TestAddRecipients(t *testing.T) {
	all := []string{"pki@example.com", "Gone@example.com", "late@example.com"}
	tests := []struct {
		name                                                string
		typ                                                 string
		accepted, refused                                   []string
		wantRecipients, wantDelivered, wantRefused, wantNot []string
	}{
		{"sent, one refused", pki.EventNotificationSent, []string{"pki@example.com", "late@example.com"}, []string{"gone@example.com"},
			[]string{"pki@example.com", "late@example.com"}, []string{"pki@example.com", "late@example.com"}, []string{"gone@example.com"}, []string{}},
		{"failed, one has it", pki.EventNotificationFailed, []string{"pki@example.com"}, []string{"gone@example.com"},
			all, []string{"pki@example.com"}, []string{"gone@example.com"}, []string{"late@example.com"}},
		{"failed, nobody has it", pki.EventNotificationFailed, nil, nil,
			all, []string{}, []string{}, all},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			detail := map[string]any{"channel": "smtp"}
			addRecipients(detail, tc.typ, all, tc.accepted, tc.refused)
			b, err := json.Marshal(detail)
			if err != nil {
				t.Fatal(err)
			}
			var got struct {
				Channel      string   `json:"channel"`
				Recipients   []string `json:"recipients"`
				DeliveredTo  []string `json:"delivered_to"`
				Refused      []string `json:"refused"`
				NotDelivered []string `json:"not_delivered"`
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.Channel != "smtp" || !slices.Equal(got.Recipients, tc.wantRecipients) || !slices.Equal(got.DeliveredTo, tc.wantDelivered) ||
				!slices.Equal(got.Refused, tc.wantRefused) || !slices.Equal(got.NotDelivered, tc.wantNot) {
				t.Errorf("detail %s", b)
			}
		})
	}
}
