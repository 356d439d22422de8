"""HomoDistil-style structured pruning while distilling: units and masks, importance
criteria, the cubic schedule, the training-time pruner and the physical shrink."""
