from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("live", "0013_session_answers_withdrawn"),
    ]

    operations = [
        migrations.AddField(
            model_name="activity",
            name="largest_group",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
