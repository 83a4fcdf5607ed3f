"""Gatescope, the library: watch your own PyTorch RNN, LSTM or GRU while it trains (gatescope.watch)."""
