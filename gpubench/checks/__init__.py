"""`gpubench check`: is an isolation layer's limit really enforced, what does start-up cost,
how much do neighbours interfere?

Checks, each with a verdict ENFORCED / NOT ENFORCED / NOT APPLICABLE and its reasons
(figure-only checks say MEASURED): memory and compute (enforcement.py, through the driver
probe of driver.py), interference and init (contention.py, engine sessions). The proxy under
test (proxy.py) is a configured local scenario's proxy layer or gpubench's own interposer as a
stand-in, whose caps can be switched off to prove that the checks say NOT ENFORCED. suite.py
runs the chosen checks and makes the result document; command.py is `gpubench check`.
"""
