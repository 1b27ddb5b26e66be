package sandbox

import (
	"fmt"
	"strings"
)

// Order returns the services in start order: every service after the
// ones it depends on, otherwise in the order of the file. A cycle is an
// error naming it.
func Order(services []*Service) ([]*Service, error) {
	byName := map[string]*Service{}
	for _, s := range services {
		byName[s.Name] = s
	}
	const (
		unseen = iota
		visiting
		done
	)
	mark := map[string]int{}
	var out []*Service
	var path []string
	var visit func(s *Service) error
	visit = func(s *Service) error {
		switch mark[s.Name] {
		case done:
			return nil
		case visiting:
			i := 0
			for path[i] != s.Name {
				i++
			}
			return fmt.Errorf("services depend on each other in a cycle: %s -> %s", strings.Join(path[i:], " -> "), s.Name)
		}
		mark[s.Name] = visiting
		path = append(path, s.Name)
		for _, d := range s.DependsOn {
			ds, ok := byName[d]
			if !ok {
				return fmt.Errorf("service %q depends on %q, which is not declared", s.Name, d)
			}
			if err := visit(ds); err != nil {
				return err
			}
		}
		path = path[:len(path)-1]
		mark[s.Name] = done
		out = append(out, s)
		return nil
	}
	for _, s := range services {
		if err := visit(s); err != nil {
			return nil, err
		}
	}
	return out, nil
}
