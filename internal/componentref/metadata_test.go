package componentref

import (
	"maps"
	"testing"
)

// TestMetadataConfigEnv: the variable a component reads each config key
// from, as the earlier flowctl took it from metadata.json: env_mapping,
// and the `env` of a config_schema entry (the form published components
// use); env_mapping wins where both name one.
func TestMetadataConfigEnv(t *testing.T) {
	for _, tc := range []struct {
		name, doc string
		want      map[string]string
	}{
		{"none", `{"type":"sink"}`, map[string]string{}},
		{"env_mapping", `{"env_mapping":{"network_passphrase":"NETWORK_PASSPHRASE"}}`,
			map[string]string{"network_passphrase": "NETWORK_PASSPHRASE"}},
		{"config_schema", `{"config_schema":{"database_path":{"type":"string","default":"./x.duckdb","env":"DUCKDB_PATH"},"plain":{"type":"string"}}}`,
			map[string]string{"database_path": "DUCKDB_PATH"}},
		{"both", `{"config_schema":{"a":{"env":"FROM_SCHEMA"},"b":{"env":"B_SCHEMA"}},"env_mapping":{"a":"FROM_MAPPING"}}`,
			map[string]string{"a": "FROM_MAPPING", "b": "B_SCHEMA"}},
		{"empty names", `{"config_schema":{"a":{"env":""}},"env_mapping":{"b":""}}`, map[string]string{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMetadata([]byte(tc.doc))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.ConfigEnv(); !maps.Equal(got, tc.want) {
				t.Errorf("ConfigEnv() = %v, want %v", got, tc.want)
			}
		})
	}
}
