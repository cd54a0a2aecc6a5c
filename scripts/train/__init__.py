"""Training negatives for edgecv's detectors (``negatives.py``). The network, loss, data loading, training
loop and export live in ``edgecv.training`` (needs the optional ``train`` extra and torch).
"""
