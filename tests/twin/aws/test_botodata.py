"""The twin parses each botocore data file once per process, whatever number of Sessions it makes
(harness/twin/aws/botodata.py): every Session then gets the same parsed copy, and botocore still answers."""
from __future__ import annotations

import botocore.session

from harness.twin.aws.botodata import share_parsed_data_files


def test_sessions_share_one_parsed_copy_of_each_data_file_and_still_answer() -> None:
    share_parsed_data_files()
    share_parsed_data_files()          # idempotent: a second install wraps nothing twice
    first, second = botocore.session.Session(), botocore.session.Session()
    endpoints = first.get_component("data_loader").load_data("endpoints")
    assert second.get_component("data_loader").load_data("endpoints") is endpoints
    model = first.get_service_data("ec2")
    assert second.get_service_data("ec2") is model and "DescribeInstances" in model["operations"]
    assert "aws" in second.get_available_partitions()
    assert "us-east-2" in second.get_available_regions("ec2")
