# layers.mk: `make check-layers`: the layers stay one-way (docs/ARCHITECTURE.md).
# scripts/check-layers.py reads every #include of src/, include/msgsock/ and
# cli/, and the symbols of the objects in $(BUILD)/obj (nm); it prints one
# line per violation and fails. `make test` runs it first.
# LAYERS_ARGS adds options: --graph (the folder graph), --files (the largest
# cycle of objects).

LAYERS_ARGS ?=

check-layers: all
	$(Q)$(PYTHON) scripts/check-layers.py --build $(BUILD) $(LAYERS_ARGS)

.PHONY: check-layers
