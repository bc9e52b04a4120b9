"""Customer types as data: a rules file of conditions over named state signals, no code in it."""
