package memory_test

import (
	"testing"

	"github.com/flowctl/flowctl/internal/store"
	"github.com/flowctl/flowctl/internal/store/memory"
	"github.com/flowctl/flowctl/internal/store/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return memory.New() })
}
