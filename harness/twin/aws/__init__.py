"""The twin's AWS side: moto holds the records, this package adds the behaviour moto lacks.

moto (in-process, on 127.0.0.1) answers every boto3 call; the modules here act around its backends:
FIS actions that act (fis), CloudWatch alarms that evaluate (alarms), Auto Scaling groups that replace
lost instances across their AZs (asg), NLB target health from real HTTP health checks (elb), an ARC
zonal-shift endpoint (zonal_shift) and an instance metadata endpoint per node (imds). `AwsTwin` (twin)
assembles them; the rest of the twin learns about instances only through the `AwsHooks` protocol (hooks).
"""
