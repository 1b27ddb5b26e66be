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
