package componentref

import (
	"encoding/json"
	"fmt"
	"os"
)

// Metadata is what a component's image may say about it in metadata.json
// beside the binary (the earlier flowctl's fields; unknown ones are
// ignored).
type Metadata struct {
	Name        string `json:"name,omitempty"`
	Version     string `json:"version,omitempty"`
	Description string `json:"description,omitempty"`
	// Type is the component's role: source, processor, sink (or
	// consumer, the earlier name of a sink).
	Type string `json:"type,omitempty"`
	// Produces and OutputTypes (an older name) are the event types it
	// emits; Consumes and InputTypes those it reads.
	Produces    []string `json:"produces,omitempty"`
	Consumes    []string `json:"consumes,omitempty"`
	InputTypes  []string `json:"input_types,omitempty"`
	OutputTypes []string `json:"output_types,omitempty"`
	// EnvMapping names, by config key, the environment variable the
	// component reads that key from; ConfigSchema's entries may name one
	// too (`env`), the form published components use. The earlier flowctl
	// passed a config key under that name; see ConfigEnv.
	EnvMapping   map[string]string         `json:"env_mapping,omitempty"`
	ConfigSchema map[string]ConfigProperty `json:"config_schema,omitempty"`
}

// ConfigProperty is an entry of metadata.json's config_schema; flowctl
// reads only the variable it names (its other fields describe the key for
// people).
type ConfigProperty struct {
	Env string `json:"env,omitempty"`
}

// ConfigEnv returns, by config key, the environment variable the
// component reads it from: config_schema's `env`, overridden by
// env_mapping, as the earlier flowctl merged them. Keys naming no
// variable are left out.
func (m *Metadata) ConfigEnv() map[string]string {
	out := map[string]string{}
	for k, p := range m.ConfigSchema {
		if p.Env != "" {
			out[k] = p.Env
		}
	}
	for k, v := range m.EnvMapping {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// Role returns the role the metadata declares — "source", "processor",
// "sink" — or "" when it declares none flowctl knows.
func (m *Metadata) Role() string {
	switch m.Type {
	case "source", "processor", "sink":
		return m.Type
	case "consumer":
		return "sink"
	}
	return ""
}

// Emits returns the event types the component declares it emits.
func (m *Metadata) Emits() []string {
	if len(m.Produces) > 0 {
		return m.Produces
	}
	return m.OutputTypes
}

// ParseMetadata reads a metadata.json document.
func ParseMetadata(b []byte) (*Metadata, error) {
	var m Metadata
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("metadata.json: %w", err)
	}
	return &m, nil
}

// loadMetadata reads path; (nil, nil) when there is no such file.
func loadMetadata(path string) (*Metadata, error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	m, err := ParseMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}
