package sandbox

import (
	"fmt"
	"strconv"
	"strings"
)

// Var is one variable a service exports to the services after it and to
// the pipeline (${NAME} in the pipeline file).
type Var struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// VarPrefix is the prefix of a service's variables: its name upper-cased,
// every character other than a letter or a digit written as '_'
// ("payments-db" → "PAYMENTS_DB").
func VarPrefix(service string) string {
	var b strings.Builder
	for _, r := range service {
		switch {
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		case r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// serviceVars are the variables of service s listening on port:
// NAME_HOST and NAME_PORT for every service; NAME_URL, NAME_DATABASE and
// NAME_USER for postgres; NAME_URL (http://) for a command or an image.
func serviceVars(s *Service, port int) []Var {
	p := VarPrefix(s.Name)
	addr := "127.0.0.1"
	vs := []Var{{p + "_HOST", addr}, {p + "_PORT", strconv.Itoa(port)}}
	switch s.Kind {
	case KindPostgres:
		vs = append(vs,
			Var{p + "_URL", fmt.Sprintf("postgres://%s@%s:%d/%s?sslmode=disable", s.User, addr, port, s.Database)},
			Var{p + "_DATABASE", s.Database},
			Var{p + "_USER", s.User})
	case KindCommand, KindImage:
		vs = append(vs, Var{p + "_URL", fmt.Sprintf("http://%s:%d", addr, port)})
	}
	return vs
}
