package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// ExactKeys refuses the keys of a TOML table that are not exactly the toml
// tag of a field of the struct v: unknown ones, and those in another case. BurntSushi/toml matches keys to fields
// regardless of case, so `approval = true` and `APPROVAL = false` in one
// table would both land in one field, the winner changing with map order
// from one start to the next: a policy an operator wrote could be off.
func ExactKeys(keys []string, v any) error {
	tags := map[string]bool{}
	t := reflect.TypeOf(v)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for i := range t.NumField() {
		if tag, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ","); tag != "" && tag != "-" {
			tags[tag] = true
		}
	}
	var bad []string
	for _, k := range keys {
		if tags[k] {
			continue
		}
		what := k
		for tag := range tags {
			if strings.EqualFold(tag, k) {
				what = fmt.Sprintf("%s (keys are case-sensitive: %s)", k, tag)
				break
			}
		}
		bad = append(bad, what)
	}
	if len(bad) > 0 {
		sort.Strings(bad)
		return fmt.Errorf("unknown keys: %s", strings.Join(bad, ", "))
	}
	return nil
}
