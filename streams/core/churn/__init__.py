"""Predicted churn risk: the BG/NBD buy-till-you-die model (`bgnbd.py`), its maximum-likelihood fit
(`fit.py`) and the model file that carries a fit to the processor (`modelfile.py`)."""
